"""Small inline SVG charts for the HTML report: no JavaScript, no plotting library, viewable offline.

Each function returns one ``<svg>`` element as text (well-formed XML; every label is escaped).
"""

from __future__ import annotations

import math
from html import escape

FONT = "font-family:sans-serif;font-size:11px"
COLORS = {"viral": "#c0392b", "partial": "#e59866", "not_viral": "#2e86c1", "no_prediction": "#aab7b8",
          "too_short": "#d5d8dc", "bar": "#5d6d7e"}


def _num(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


def _tick_label(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 10 or x == int(x) else f"{x:.2g}"


def _nice_max(x: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is >= x (an axis end with round ticks)."""
    if x <= 0:
        return 1.0
    scale = 10.0 ** math.floor(math.log10(x))
    return next(step * scale for step in (1, 2, 5, 10) if step * scale >= x)


def stacked_bars(rows: list[tuple[str, list[tuple[str, float]]]], xmax: float, axis_label: str,
                 label_width: int = 160, width: int = 640) -> str:
    """One horizontal bar per row, made of (category, value) segments, on a 0..xmax axis."""
    bar_h, gap, top, bottom = 16, 6, 8, 34
    plot_w = width - label_width - 20
    height = top + len(rows) * (bar_h + gap) + bottom
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" style="{FONT}">']
    for k, (label, segments) in enumerate(rows):
        y = top + k * (bar_h + gap)
        out.append(f'<text x="{label_width - 6}" y="{y + bar_h - 4}" text-anchor="end">{escape(label)}</text>')
        x = float(label_width)
        for category, value in segments:
            w = plot_w * value / xmax if xmax else 0
            if w > 0:
                color = COLORS.get(category, COLORS["bar"])
                out.append(f'<rect x="{_num(x)}" y="{y}" width="{_num(w)}" height="{bar_h}" fill="{color}">'
                           f'<title>{escape(label)}: {escape(category)} {value:,.4g}</title></rect>')
            x += w
    axis_y = top + len(rows) * (bar_h + gap)
    out.append(f'<line x1="{label_width}" y1="{axis_y}" x2="{label_width + plot_w}" y2="{axis_y}" stroke="#333"/>')
    for t in range(5):
        value = xmax * t / 4
        tx = label_width + plot_w * t / 4
        out.append(f'<line x1="{_num(tx)}" y1="{axis_y}" x2="{_num(tx)}" y2="{axis_y + 4}" stroke="#333"/>')
        out.append(f'<text x="{_num(tx)}" y="{axis_y + 15}" text-anchor="middle">{_tick_label(value)}</text>')
    out.append(f'<text x="{label_width + plot_w / 2:.0f}" y="{axis_y + 29}" text-anchor="middle">'
               f'{escape(axis_label)}</text>')
    out.append("</svg>")
    return "".join(out)


def histogram(counts: list[int], edges: list[float], threshold: float | None, title: str,
              width: int = 300, height: int = 170) -> str:
    """Bars over [edges[0], edges[-1]] with a dashed line at the threshold; bars at or above it in red."""
    left, right, top, bottom = 40, 10, 24, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    ymax = _nice_max(max(counts, default=0))
    lo, hi = edges[0], edges[-1]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" style="{FONT}">',
           f'<text x="{left + plot_w / 2:.0f}" y="12" text-anchor="middle" font-weight="bold">{escape(title)}</text>']
    for k, count in enumerate(counts):
        x0 = left + plot_w * (edges[k] - lo) / (hi - lo)
        x1 = left + plot_w * (edges[k + 1] - lo) / (hi - lo)
        h = plot_h * count / ymax
        viral = threshold is not None and edges[k] >= threshold
        color = COLORS["viral"] if viral else COLORS["not_viral"]
        out.append(f'<rect x="{_num(x0 + 0.5)}" y="{_num(top + plot_h - h)}" width="{_num(max(x1 - x0 - 1, 0.5))}" '
                   f'height="{_num(h)}" fill="{color}"><title>{edges[k]:g}-{edges[k + 1]:g}: {count:,}</title></rect>')
    base = top + plot_h
    out.append(f'<line x1="{left}" y1="{base}" x2="{left + plot_w}" y2="{base}" stroke="#333"/>')
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" stroke="#333"/>')
    for t in range(5):
        value = lo + (hi - lo) * t / 4
        tx = left + plot_w * t / 4
        out.append(f'<text x="{_num(tx)}" y="{base + 13}" text-anchor="middle">{value:g}</text>')
    out.append(f'<text x="{left + plot_w / 2:.0f}" y="{base + 26}" text-anchor="middle">virus_score</text>')
    for value in (0, ymax / 2, ymax) if (ymax / 2).is_integer() else (0, ymax):
        ty = base - plot_h * value / ymax
        out.append(f'<text x="{left - 4}" y="{_num(ty + 4)}" text-anchor="end">{_tick_label(value)}</text>')
    if threshold is not None and lo <= threshold <= hi:
        tx = left + plot_w * (threshold - lo) / (hi - lo)
        out.append(f'<line x1="{_num(tx)}" y1="{top}" x2="{_num(tx)}" y2="{base}" stroke="#111" '
                   f'stroke-dasharray="4 3"><title>threshold {threshold:g}</title></line>')
    out.append("</svg>")
    return "".join(out)


def legend(categories: list[tuple[str, str]]) -> str:
    """Colour keys: (category, label) pairs."""
    width = 130 * len(categories)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="18" viewBox="0 0 {width} 18" '
           f'style="{FONT}">']
    for k, (category, label) in enumerate(categories):
        x = 130 * k
        out.append(f'<rect x="{x}" y="3" width="12" height="12" fill="{COLORS.get(category, COLORS["bar"])}"/>')
        out.append(f'<text x="{x + 17}" y="13">{escape(label)}</text>')
    out.append("</svg>")
    return "".join(out)
