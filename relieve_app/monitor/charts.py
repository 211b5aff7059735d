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
COLORS = [
    "#2e7d32", "#c62828", "#ef6c00", "#1565c0", "#6a1b9a", "#00838f",
    "#5d4037", "#9e9d24", "#ad1457", "#37474f", "#4527a0", "#00695c",
]  # fmt: skip
CHAR_WIDTH, TITLE_CHAR_WIDTH = 7, 7.5  # generous widths of a character of the 11px text and 12px title
LEGEND_GAP, LEGEND_ROW = 12, 14  # between the title and the legend; the height of a legend row


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


def legend_rows(labels, width, title):
    """Lines of (x, index) for the legend entries, in order, each line flush right.

    The first line shares the top with the title and stops short of it; a legend too long for it
    goes on in lines of its own below, so no entry ever covers the title or another entry.
    """
    right = width - RIGHT
    rows, row, left = [], [], LEFT + TITLE_CHAR_WIDTH * len(title) + LEGEND_GAP
    used = 0
    for index, label in enumerate(labels):
        size = _entry_width(label)
        if row and right - used - size < left:
            rows.append(row)
            row, used, left = [], 0, LEFT
        row.append((index, size))
        used += size
    if row:
        rows.append(row)
    placed = []
    for row in rows:
        x = right - sum(size for _index, size in row)
        line = []
        for index, size in row:
            line.append((x, index))
            x += size
        placed.append(line)
    return placed


def _entry_width(label):
    return 14 + CHAR_WIDTH * len(label)


def line_chart(chart, width=WIDTH, height=HEIGHT):
    rows = legend_rows([series.label for series in chart.series], width, chart.title)
    extra = LEGEND_ROW * max(len(rows) - 1, 0)  # legend lines below the title push the plot down
    top, height = TOP + extra, height + extra
    plot_w, plot_h = width - LEFT - RIGHT, height - top - BOTTOM
    x_low, x_high = chart.x_range
    x_span = (x_high - x_low) or 1
    y_max = nice_ceiling(max((y for s in chart.series for _x, y in s.points), default=0))

    def sx(x):
        return round(LEFT + (x - x_low) / x_span * plot_w, 1)

    def sy(y):
        return round(top + plot_h - y / y_max * plot_h, 1)

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
        parts.append(f'<text x="4" y="{top - 6}" class="tick">{escape(chart.y_unit)}</text>')
    for x, label in chart.x_ticks:
        parts.append(
            f'<text x="{sx(x)}" y="{height - 8}" text-anchor="middle" class="tick">{escape(label)}</text>'
        )
    parts.append(
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{top}" y2="{top + plot_h}" class="axis"/>'
        f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{top + plot_h}" y2="{top + plot_h}" class="axis"/>'
    )
    for line, row in enumerate(rows):
        for x, index in row:
            series = chart.series[index]
            color = series.color or COLORS[index % len(COLORS)]
            y = 8 + LEGEND_ROW * line
            label = escape(series.label)
            parts.append(
                f'<g data-legend="{label}"><rect x="{x}" y="{y}" width="10" height="10" fill="{color}"/>'
                f'<text x="{x + 13}" y="{y + 9}" class="tick">{label}</text></g>'
            )
    for index, series in enumerate(chart.series):
        color = series.color or COLORS[index % len(COLORS)]
        label = escape(series.label)
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
            f'<text x="{LEFT + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" class="empty">'
            "no data yet</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
