"""What every PDF Gatehouse draws shares: a font with the accents of the portal's languages, embedded."""

from __future__ import annotations

from pathlib import Path

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
REGULAR, BOLD = "GatehouseSans", "GatehouseSans-Bold"


def fonts() -> tuple[str, str]:
    """The regular and bold font names, registered with reportlab on first use: DejaVu Sans where installed (the
    accents of the four languages and far beyond), else reportlab's own Vera."""
    from reportlab import rl_config  # type: ignore[import-untyped]
    from reportlab.pdfbase import pdfmetrics  # type: ignore[import-untyped]
    from reportlab.pdfbase.ttfonts import TTFont  # type: ignore[import-untyped]

    if REGULAR not in pdfmetrics.getRegisteredFontNames():
        if (DEJAVU / "DejaVuSans.ttf").exists() and (DEJAVU / "DejaVuSans-Bold.ttf").exists():
            regular, bold = DEJAVU / "DejaVuSans.ttf", DEJAVU / "DejaVuSans-Bold.ttf"
        else:
            bundled = Path(rl_config.__file__).parent / "fonts"
            regular, bold = bundled / "Vera.ttf", bundled / "VeraBd.ttf"
        pdfmetrics.registerFont(TTFont(REGULAR, str(regular)))
        pdfmetrics.registerFont(TTFont(BOLD, str(bold)))
    return REGULAR, BOLD
