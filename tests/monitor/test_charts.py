"""Charts drawn as SVG on the server: well-formed, scaled, escaped, and telling an empty chart apart."""

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
