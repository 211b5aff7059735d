"""Line charts as SVG text, drawn on the server: no JavaScript library, nothing fetched from elsewhere.

``line_chart`` takes series of (x, y) points in their own units and maps them onto a fixed canvas
with axes, a few labelled ticks and a legend. Labels are escaped; numbers are rounded to one decimal
so a day of minutes stays a few kilobytes per series.
"""

from dataclasses import dataclass, field
from html import escape

WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 28, 28  # margins around the plot area
STYLE = (
    "text{font:11px sans-serif;fill:currentColor}.chart-title{font-weight:bold;font-size:12px}"
    ".grid{stroke:#8884;stroke-width:1}.axis{stroke:#888;stroke-width:1}.empty{fill:#888}"
)
DOTS_UP_TO = 30  # series this short also get a dot per point
COLORS = ["#2e7d32", "#c62828", "#ef6c00", "#1565c0", "#6a1b9a", "#00838f", "#5d4037", "#9e9d24"]


@dataclass
class Series:
    label: str
    points: list  # (x, y) pairs, x ascending
    color: str = ""


@dataclass
class Chart:
    title: str
    x_range: tuple  # (low, high) in the x unit
    x_ticks: list = field(default_factory=list)  # (x, label)
    y_unit: str = ""
    series: list = field(default_factory=list)


def nice_ceiling(value):
    """The smallest of 1, 2, 4, 6, 8 times a power of ten at least ``value``: its quarters read well."""
    if value <= 0:
        return 1
    power = 1
    while power * 10 <= value:
        power *= 10
    while power > value:
        power /= 10
    for step in (1, 2, 4, 6, 8, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def _number(value):
    return f"{value:g}" if value < 1000 else f"{value:,.0f}"


def line_chart(chart, width=WIDTH, height=HEIGHT):
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    x_low, x_high = chart.x_range
    x_span = (x_high - x_low) or 1
    y_max = nice_ceiling(max((y for s in chart.series for _x, y in s.points), default=0))

    def sx(x):
        return round(LEFT + (x - x_low) / x_span * plot_w, 1)

    def sy(y):
        return round(TOP + plot_h - y / y_max * plot_h, 1)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'class="relieve-chart" aria-label="{escape(chart.title)}">',
        f"<title>{escape(chart.title)}</title>",
        f"<style>{STYLE}</style>",
        f'<text x="{LEFT}" y="16" class="chart-title">{escape(chart.title)}</text>',
    ]
    for step in range(5):  # horizontal grid lines with their values
        y = y_max * step / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{sy(y)}" y2="{sy(y)}" class="grid"/>'
            f'<text x="{LEFT - 4}" y="{sy(y) + 4}" text-anchor="end" class="tick">{_number(y)}</text>'
        )
    if chart.y_unit:
        parts.append(f'<text x="4" y="{TOP - 6}" class="tick">{escape(chart.y_unit)}</text>')
    for x, label in chart.x_ticks:
        parts.append(
            f'<text x="{sx(x)}" y="{height - 8}" text-anchor="middle" class="tick">{escape(label)}</text>'
        )
    parts.append(
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + plot_h}" class="axis"/>'
        f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" class="axis"/>'
    )
    legend_x = width - RIGHT
    for index, series in reversed(list(enumerate(chart.series))):
        color = series.color or COLORS[index % len(COLORS)]
        label = escape(series.label)
        legend_x -= 14 + 7 * len(series.label)
        parts.append(
            f'<rect x="{legend_x}" y="8" width="10" height="10" fill="{color}"/>'
            f'<text x="{legend_x + 13}" y="17" class="tick">{label}</text>'
        )
        if series.points:
            points = " ".join(f"{sx(x)},{sy(y)}" for x, y in series.points)
            parts.append(
                f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.5" '
                f'data-series="{label}"><title>{label}</title></polyline>'
            )
        if 0 < len(series.points) <= DOTS_UP_TO:  # a lone point draws no line: mark each one
            parts += [f'<circle cx="{sx(x)}" cy="{sy(y)}" r="2.5" fill="{color}"/>' for x, y in series.points]
    if not any(series.points for series in chart.series):
        parts.append(
            f'<text x="{LEFT + plot_w / 2}" y="{TOP + plot_h / 2}" text-anchor="middle" class="empty">'
            "no data yet</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
