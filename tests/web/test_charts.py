"""SVG charts drawn on the server: well-formed, presentation attributes only, marks that carry
their values, and the edge cases (nothing to draw, gaps, odd values)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from k3watch.web.charts import SEVERITY_COLOURS, bar_chart, colour, time_chart

SVG = "{http://www.w3.org/2000/svg}"
DAY = 86400.0
T0 = 1_772_496_000.0  # 2026-03-03T00:00:00Z


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def marks(root: ET.Element) -> list[ET.Element]:
    return [e for e in root.iter(f"{SVG}rect") if "data-value" in e.attrib]


def assert_presentation_only(root: ET.Element) -> None:
    """No CSS and no script: a PDF renderer reads the chart as a browser does."""
    for element in root.iter():
        assert "style" not in element.attrib
        assert "class" not in element.attrib
        assert element.tag not in (f"{SVG}style", f"{SVG}script")


def test_bar_chart_draws_one_bar_per_value_in_order() -> None:
    root = parse(bar_chart([("alice", 4), ("bob", 2), ("carol", 1)], title="Users", unit=" req"))
    assert_presentation_only(root)
    bars = marks(root)
    assert [b.get("data-label") for b in bars] == ["alice", "bob", "carol"]
    assert [float(b.get("data-value", "")) for b in bars] == [4, 2, 1]
    widths = [float(b.get("width", "")) for b in bars]
    assert widths[0] > widths[1] > widths[2] > 0
    assert widths[0] == pytest.approx(2 * widths[1])
    titles = [t.text for b in bars for t in b.iter(f"{SVG}title")]
    assert titles == ["alice: 4 req", "bob: 2 req", "carol: 1 req"]
    assert root.get("aria-label") == "Users"


def test_bar_chart_colours_severities_and_given_labels() -> None:
    root = parse(bar_chart([("critical", 1), ("x", 1)], title="t", colours={"x": "#123456"}))
    fills = [b.get("fill") for b in marks(root)]
    assert fills == [SEVERITY_COLOURS["critical"], "#123456"]
    assert colour(8) == colour(1)  # the palette repeats


def test_bar_chart_with_nothing_says_so() -> None:
    root = parse(bar_chart([], title="Empty"))
    assert not marks(root)
    assert "nothing in this period" in "".join(root.itertext())


def test_bar_chart_escapes_labels_and_draws_odd_values_as_zero() -> None:
    root = parse(bar_chart([("<b>&", -3), ("nan", float("nan")), ("ok", 2)], title="a & b"))
    assert_presentation_only(root)
    bars = marks(root)
    assert [b.get("data-label") for b in bars] == ["<b>&", "nan", "ok"]
    assert [float(b.get("width", "")) for b in bars][:2] == [0, 0]
    assert "a & b" in "".join(root.itertext())


def test_time_chart_stacks_series_per_bucket_and_leaves_gaps_empty() -> None:
    series = {
        "forbid": {T0: 3.0, T0 + 2 * DAY: 1.0},
        "401": {T0: 1.0},
    }
    root = parse(time_chart(series, title="Denied", start=T0 + 3600, end=T0 + 4 * DAY, bucket=DAY))
    assert_presentation_only(root)
    cols = marks(root)
    assert [(c.get("data-series"), float(c.get("data-start", ""))) for c in cols] == [
        ("forbid", T0),
        ("401", T0),
        ("forbid", T0 + 2 * DAY),
    ]
    forbid, unauthorized = cols[0], cols[1]
    # stacked: the second series sits on top of the first, in the same column
    assert forbid.get("x") == unauthorized.get("x")
    top_of_forbid = float(forbid.get("y", ""))
    assert float(unauthorized.get("y", "")) + float(unauthorized.get("height", "")) == (
        pytest.approx(top_of_forbid)
    )
    assert float(forbid.get("height", "")) == pytest.approx(3 * float(cols[2].get("height", "")))
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "03-03" in labels and "03-06" in labels  # four day columns, the first at midnight
    assert "forbid" in labels and "401" in labels  # the legend


def test_time_chart_with_no_values_says_so() -> None:
    root = parse(time_chart({"a": {}}, title="Nothing", start=T0, end=T0 + DAY, bucket=3600))
    assert not marks(root)
    assert "nothing in this period" in "".join(root.itertext())


def test_time_chart_ignores_negative_values_and_refuses_a_bad_bucket() -> None:
    root = parse(time_chart({"a": {T0: -2.0, T0 + 3600: 2.0}}, title="t", start=T0,
                            end=T0 + 7200, bucket=3600))  # fmt: skip
    assert [float(c.get("data-value", "")) for c in marks(root)] == [2.0]
    with pytest.raises(ValueError, match="bucket"):
        time_chart({}, title="t", start=T0, end=T0 + 1, bucket=0)


def test_time_chart_axis_rounds_up_to_a_nice_number() -> None:
    root = parse(time_chart({"a": {T0: 730.0}}, title="t", start=T0, end=T0 + 3600, bucket=3600))
    labels = [t.text for t in root.iter(f"{SVG}text")]
    assert "1,000" in labels  # the axis ends at the next 1, 2 or 5 × 10^n
    assert "500" in labels
