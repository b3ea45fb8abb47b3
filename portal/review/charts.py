"""Charts as SVG drawn here: no script, no outside service, readable by a screen reader (title, description,
and the same numbers in a table beside each chart). Colours are told apart without hue too (allowed is solid,
denied is hatched), and both pass contrast on white.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

ALLOWED, DENIED, INK, GRID = "#1d4f91", "#b3261e", "#1a1a1a", "#d0d0d0"
_HATCH = ('<defs><pattern id="{key}-hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
          'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fff"/>'
          '<rect width="3" height="6" fill="' + DENIED + '"/></pattern></defs>')


@dataclass(frozen=True, slots=True)
class Column:
    label: str
    """Shown under every few columns (e.g. the hour)."""
    allowed: int
    denied: int


def _nice_max(value: int) -> int:
    """A round top for the axis: 1, 2 or 5 times a power of ten, at least the largest value."""
    top = 1
    while True:
        for step in (1, 2, 5):
            if step * top >= value:
                return step * top
        top *= 10


def _open(key: str, width: int, height: int, title: str, description: str) -> list[str]:
    """Ids carry the chart's key: several charts share a page."""
    return [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
            f'aria-labelledby="{key}-t {key}-d" class="chart" font-family="system-ui, sans-serif" font-size="12">',
            f'<title id="{key}-t">{escape(title)}</title><desc id="{key}-d">{escape(description)}</desc>',
            _HATCH.replace("{key}", key),
            f'<rect width="{width}" height="{height}" fill="#fff"/>']


def stacked_columns(key: str, columns: Sequence[Column], *, title: str, description: str, allowed_label: str,
                    denied_label: str, every: int = 3) -> str:
    """Allowed and denied per column (per hour), stacked, with a legend and a labelled y axis."""
    width, height, left, bottom, top = 760, 280, 48, 40, 36
    plot_w, plot_h = width - left - 12, height - top - bottom
    peak = _nice_max(max((c.allowed + c.denied for c in columns), default=0))
    step = plot_w / max(len(columns), 1)
    out = _open(key, width, height, title, description)
    for fraction in (0, 0.5, 1) if peak % 2 == 0 else (0, 1):  # only whole numbers on the axis
        y = top + plot_h * (1 - fraction)
        out.append(f'<line x1="{left}" x2="{width - 12}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{INK}">{int(peak * fraction)}</text>')
    for index, column in enumerate(columns):
        x = left + index * step + step * 0.12
        w = max(step * 0.76, 1)
        h_allowed = plot_h * column.allowed / peak
        h_denied = plot_h * column.denied / peak
        base = top + plot_h
        out.append(f'<g><title>{escape(column.label)}: {column.allowed} {escape(allowed_label)}, '
                   f'{column.denied} {escape(denied_label)}</title>'
                   f'<rect x="{x:.1f}" y="{base - h_allowed:.1f}" width="{w:.1f}" height="{h_allowed:.1f}" '
                   f'fill="{ALLOWED}"/>'
                   f'<rect x="{x:.1f}" y="{base - h_allowed - h_denied:.1f}" width="{w:.1f}" '
                   f'height="{h_denied:.1f}" fill="url(#{key}-hatch)" stroke="{DENIED}"/></g>')
        if index % every == 0:
            out.append(f'<text x="{x + w / 2:.1f}" y="{base + 16}" text-anchor="middle" fill="{INK}">'
                       f'{escape(column.label)}</text>')
    out.append(_legend(key, left, 16, allowed_label, denied_label))
    out.append("</svg>")
    return "".join(out)


def _legend(key: str, x: int, y: int, allowed_label: str, denied_label: str) -> str:
    """Both kinds of bar named; a chart of one kind (no `denied_label`) names only that one."""
    first = (f'<rect x="{x}" y="{y - 10}" width="14" height="12" fill="{ALLOWED}"/>'
             f'<text x="{x + 20}" y="{y}" fill="{INK}">{escape(allowed_label)}</text>')
    if not denied_label:
        return first
    return first + (f'<rect x="{x + 160}" y="{y - 10}" width="14" height="12" fill="url(#{key}-hatch)" '
                    f'stroke="{DENIED}"/><text x="{x + 180}" y="{y}" fill="{INK}">{escape(denied_label)}</text>')


def horizontal_bars(key: str, rows: Sequence[tuple[str, int, int]], *, title: str, description: str, allowed_label: str,
                    denied_label: str) -> str:
    """One bar per row (label, allowed, denied), largest first as given; labels left of the bars."""
    row_h, left, top = 26, 230, 34
    width, height = 760, top + row_h * max(len(rows), 1) + 8
    peak = _nice_max(max((a + d for _, a, d in rows), default=0))
    plot_w = width - left - 60
    out = _open(key, width, height, title, description)
    out.append(_legend(key, 12, 16, allowed_label, denied_label))
    for index, (label, allowed, denied) in enumerate(rows):
        y = top + index * row_h
        w_allowed, w_denied = plot_w * allowed / peak, plot_w * denied / peak
        shown = label if len(label) <= 34 else label[:33] + "…"
        out.append(f'<g><title>{escape(label)}: {allowed} {escape(allowed_label)}, {denied} '
                   f'{escape(denied_label)}</title>'
                   f'<text x="{left - 8}" y="{y + 16}" text-anchor="end" fill="{INK}">{escape(shown)}</text>'
                   f'<rect x="{left}" y="{y + 4}" width="{w_allowed:.1f}" height="{row_h - 8}" fill="{ALLOWED}"/>'
                   f'<rect x="{left + w_allowed:.1f}" y="{y + 4}" width="{w_denied:.1f}" height="{row_h - 8}" '
                   f'fill="url(#{key}-hatch)" stroke="{DENIED}"/>'
                   f'<text x="{left + w_allowed + w_denied + 6:.1f}" y="{y + 16}" fill="{INK}">'
                   f'{allowed + denied}</text></g>')
    out.append("</svg>")
    return "".join(out)
