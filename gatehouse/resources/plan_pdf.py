"""The release plan as a PDF an inmate takes out: A4 pages of headed sections, in the inmate's language.

The builder knows no language: every word it prints comes in already translated and formatted (dates, states), so
the same code prints a plan in any of the portal's languages, and a test can read it back with pdftotext. The font
is embedded (DejaVu Sans where installed, else reportlab's Vera), so accented letters print as typed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from gatehouse.pdf import fonts

__all__ = ["Entry", "PlanDocument", "Section", "plan_pdf"]



@dataclass(frozen=True, slots=True)
class Entry:
    """A step, a service, a job, a certificate or a note: a title, what is said about it, and its state if any."""

    title: str
    lines: tuple[str, ...] = ()
    mark: str = ""
    """Printed after the title in bold (a step's state, a job "closed")."""


@dataclass(frozen=True, slots=True)
class Section:
    heading: str
    entries: tuple[Entry, ...] = ()
    empty: str = ""
    """Printed when there are no entries."""


@dataclass(frozen=True, slots=True)
class PlanDocument:
    title: str
    facts: tuple[tuple[str, str], ...]
    """Label and value under the title: name, number, release date, region."""
    sections: tuple[Section, ...]
    language: str
    """The BCP 47 tag of the text (the PDF's /Lang, for screen readers)."""
    author: str
    """The facility."""
    footer: str
    """Printed at the foot of every page, before its number."""
    page_label: str = "%(page)d"
    """The page number as the language says it, with a `%(page)d` placeholder."""


def _text(value: str) -> str:
    """Text for a Paragraph, which reads a little XML: every character printed as typed."""
    return escape(value)


def plan_pdf(document: PlanDocument) -> bytes:
    from reportlab.lib.pagesizes import A4  # type: ignore[import-untyped]
    from reportlab.lib.styles import ParagraphStyle  # type: ignore[import-untyped]
    from reportlab.lib.units import mm  # type: ignore[import-untyped]
    from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Spacer  # type: ignore[import-untyped]

    regular, bold = fonts()
    styles = {
        "title": ParagraphStyle("title", fontName=bold, fontSize=20, leading=25, spaceAfter=4 * mm),
        "fact": ParagraphStyle("fact", fontName=regular, fontSize=11, leading=15),
        "heading": ParagraphStyle("heading", fontName=bold, fontSize=14, leading=18, spaceBefore=6 * mm,
                                  spaceAfter=2 * mm, keepWithNext=1),
        "entry": ParagraphStyle("entry", fontName=bold, fontSize=11, leading=14, spaceBefore=2 * mm),
        "line": ParagraphStyle("line", fontName=regular, fontSize=10, leading=13, leftIndent=5 * mm),
        "empty": ParagraphStyle("empty", fontName=regular, fontSize=10, leading=13),
    }
    story: list[Any] = [Paragraph(_text(document.title), styles["title"])]
    for label, value in document.facts:
        story.append(Paragraph(f'<font name="{bold}">{_text(label)}:</font> {_text(value)}', styles["fact"]))
    for section in document.sections:
        story.append(Paragraph(_text(section.heading), styles["heading"]))
        if not section.entries and section.empty:
            story.append(Paragraph(_text(section.empty), styles["empty"]))
        for entry in section.entries:
            head = " \u2014 ".join(_text(part) for part in (entry.title, entry.mark) if part)
            block = [Paragraph(head, styles["entry"])] if head else []
            block += [Paragraph(_text(line), styles["line"]) for line in entry.lines if line]
            story.append(KeepTogether(block))
    story.append(Spacer(1, 5 * mm))

    def foot(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(regular, 8)
        canvas.drawString(18 * mm, 10 * mm, document.footer)
        canvas.drawRightString(A4[0] - 18 * mm, 10 * mm, document.page_label % {"page": doc.page})
        canvas.restoreState()

    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=18 * mm,
                            bottomMargin=20 * mm, title=document.title, author=document.author,
                            lang=document.language, invariant=True, pageCompression=1)
    doc.build(story, onFirstPage=foot, onLaterPages=foot)
    return out.getvalue()
