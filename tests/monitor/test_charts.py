"""Charts drawn as SVG on the server: well-formed, scaled, escaped, and telling an empty chart apart."""

import itertools
import re
import xml.etree.ElementTree as ET

from relieve_app.monitor import charts
from relieve_app.monitor.dashboard import percentile

SVG = "{http://www.w3.org/2000/svg}"


def draw(*series, x_range=(0, 10)):
    return ET.fromstring(charts.line_chart(charts.Chart("Test <chart>", x_range, series=list(series))))


def test_each_series_is_a_polyline_inside_the_plot():
    root = draw(charts.Series("up", [(0, 0), (5, 50), (10, 100)]), charts.Series("flat", [(0, 1), (10, 1)]))
    lines = {line.get("data-series"): line for line in root.iter(f"{SVG}polyline")}
    assert set(lines) == {"up", "flat"}
    points = [tuple(map(float, p.split(","))) for p in lines["up"].get("points").split()]
    xs, ys = [x for x, _ in points], [y for _, y in points]
    assert xs == sorted(xs) and xs[0] == charts.LEFT and xs[-1] == charts.WIDTH - charts.RIGHT
    assert ys[0] == charts.HEIGHT - charts.BOTTOM and ys[-1] == charts.TOP  # 100 is the top of the scale
    assert root.find(f"{SVG}title").text == "Test <chart>"  # escaped in the text, read back whole


def test_a_lone_point_gets_a_dot_and_an_empty_chart_says_so():
    root = draw(charts.Series("one", [(5, 3)]))
    assert len(list(root.iter(f"{SVG}circle"))) == 1
    empty = draw(charts.Series("none", []))
    assert any(text.text == "no data yet" for text in empty.iter(f"{SVG}text"))


def test_labels_cannot_inject_markup():
    svg = charts.line_chart(
        charts.Chart("t", (0, 1), series=[charts.Series('<script>"x"</script>', [(0, 1)])])
    )
    assert "<script>" not in svg
    ET.fromstring(svg)


def test_scale_ceilings_are_round():
    assert [charts.nice_ceiling(v) for v in (0, 0.3, 3, 7, 11, 45, 130)] == [1, 0.4, 4, 8, 20, 60, 200]


def test_percentiles_are_nearest_rank():
    values = list(range(1, 101))
    assert (percentile(values, 0.5), percentile(values, 0.9), percentile(values, 0.99)) == (50, 90, 99)
    assert percentile([7.0], 0.99) == 7.0


def test_the_legend_of_eight_children_and_more_leaves_the_title_uncovered():
    """Laid right to left with no look at the title, eight children's names ran over it."""
    labels = ["default0", *(f"mail{n}" for n in range(8))]
    chart = charts.Chart(
        title="Resident memory per child (all queues), last hour",
        x_range=(-60, 0),
        series=[charts.Series(label, [(-5, 40 + n)]) for n, label in enumerate(labels)],
    )
    svg = charts.line_chart(chart)
    entries = re.findall(r'<g data-legend="([^"]+)"><rect x="([\d.]+)" y="([\d.]+)"', svg)
    assert [label for label, _x, _y in entries] == labels  # each child once, in order
    title_end = charts.LEFT + 7 * len(chart.title)  # bold 12 px runs under 7 px a character
    boxes = []
    for label, x, y in entries:
        left, top = float(x), float(y)
        right = left + 13 + 7 * len(label)
        assert right <= charts.WIDTH - charts.RIGHT + 0.5, label  # inside the canvas
        if top < 20:  # on the title's line
            assert left >= title_end, f"{label} covers the title"
        boxes.append((top, left, right))
    for (top_a, _la, right_a), (top_b, left_b, _rb) in itertools.pairwise(sorted(boxes)):
        if top_a == top_b:
            assert right_a <= left_b, "two entries overlap"
    # A second legend line pushes the plot down instead of crossing it.
    lines = {top for top, _l, _r in boxes}
    assert len(lines) == 2
    height = int(re.search(r'viewBox="0 0 \d+ (\d+)"', svg)[1])
    assert height == charts.HEIGHT + 14
