"""The wijk trends chart: axes, the values on the points, the weeks with a raised trend
marked, a break where a week had fewer than k children; drawing and text only."""

from __future__ import annotations

from xml.etree import ElementTree

from services.notification.trend_chart import chart_svg

CELLS = [
    {"wijk": "WK099905", "theme": "pesten", "window": "2026-W45", "children": 12, "trend": False},
    {"wijk": "WK099905", "theme": "pesten", "window": "2026-W47", "children": 31, "trend": True},
    {"wijk": "WK099905", "theme": "huiselijk_geweld", "window": "2026-W46", "children": 10,
     "trend": False},
]  # fmt: skip


def texts(svg: bytes) -> list[str]:
    return [t.strip() for t in ElementTree.fromstring(svg).itertext() if t.strip()]


def test_the_chart_has_axes_values_a_legend_and_marks_the_trend() -> None:
    svg = chart_svg(CELLS, "nl")
    shown = texts(svg)
    for week in ("2026-W45", "2026-W46", "2026-W47"):
        assert week in shown
    assert "aantal kinderen" in shown and "week" in shown
    assert {"pesten", "huiselijk geweld"} <= set(shown)
    assert "31 ▲" in shown and "12" in shown  # values printed, the trend marked
    assert "31" not in shown  # ... the trend's value only with its mark
    assert "children" in texts(chart_svg(CELLS, "en"))


def test_the_chart_holds_no_script_and_nothing_from_elsewhere() -> None:
    svg = chart_svg(CELLS)
    assert b"<script" not in svg
    assert b"http://" not in svg.replace(b"http://www.w3.org/", b"")
    assert b"https://" not in svg
