"""Vector charts for the report: small, self-contained inline SVG (no scripts, no external
references) drawn from plain numbers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

PALETTE = ("#1f4e79", "#2e75b6", "#9dc3e6", "#c55a11", "#f4b183", "#548235", "#a9d18e", "#7f7f7f")
SEVERITY_COLORS = {
    "critical": "#7b0000",
    "high": "#c00000",
    "medium": "#c55a11",
    "low": "#2e75b6",
    "info": "#7f7f7f",
}
FONT = "MG Sans, sans-serif"


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def bar_chart(
    title: str,
    items: Sequence[tuple[str, float]],
    *,
    colors: Mapping[str, str] | None = None,
    width: int = 460,
    unit: str = "",
    maximum: float | None = None,
) -> str:
    """A horizontal bar chart; one bar per (label, value)."""
    bar_h, gap, label_w, top = 16, 6, 150, 26
    height = top + max(1, len(items)) * (bar_h + gap) + 6
    plot_w = width - label_w - 50
    top_value = maximum if maximum is not None else max([v for _, v in items] + [1])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="14" font-family="{FONT}" font-size="11" font-weight="bold" '
        f'fill="#1a1a1a">{escape(title)}</text>',
    ]
    if not items:
        parts.append(
            f'<text x="0" y="{top + 12}" font-family="{FONT}" font-size="9" fill="#555">'
            "nothing to show</text>"
        )
    for i, (label, value) in enumerate(items):
        y = top + i * (bar_h + gap)
        w = 0 if top_value <= 0 else max(0.0, plot_w * float(value) / float(top_value))
        color = (colors or {}).get(label, PALETTE[i % len(PALETTE)])
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end" font-family="{FONT}" '
            f'font-size="9" fill="#1a1a1a">{escape(label)}</text>'
        )
        parts.append(
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}"/>'
        )
        parts.append(
            f'<text x="{label_w + w + 4:.1f}" y="{y + 12}" font-family="{FONT}" font-size="9" '
            f'fill="#1a1a1a">{escape(_fmt(value) + unit)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def stacked_bar(title: str, segments: Sequence[tuple[str, float]], *, width: int = 460) -> str:
    """One 100 % bar split into segments, with a legend."""
    total = sum(v for _, v in segments) or 1
    bar_y, bar_h = 24, 20
    legend_rows = (len(segments) + 2) // 3
    height = bar_y + bar_h + 10 + legend_rows * 16
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="14" font-family="{FONT}" font-size="11" font-weight="bold" '
        f'fill="#1a1a1a">{escape(title)}</text>',
    ]
    x = 0.0
    for i, (label, value) in enumerate(segments):
        w = width * float(value) / float(total)
        color = PALETTE[i % len(PALETTE)]
        parts.append(
            f'<rect x="{x:.1f}" y="{bar_y}" width="{w:.1f}" height="{bar_h}" fill="{color}"/>'
        )
        x += w
        lx = (i % 3) * (width / 3)
        ly = bar_y + bar_h + 10 + (i // 3) * 16
        parts.append(f'<rect x="{lx:.1f}" y="{ly}" width="10" height="10" fill="{color}"/>')
        parts.append(
            f'<text x="{lx + 14:.1f}" y="{ly + 9}" font-family="{FONT}" font-size="9" '
            f'fill="#1a1a1a">{escape(f"{label}: {_fmt(value)}")}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
