"""The wijk trends chart a team lead reads: children per theme per week, with axes and
the values on the points, the weeks with a raised trend marked, drawn by pygal as an SVG
served by this service (no script in it, nothing from a CDN). Cells under k never reach
notification: a week without a value is "fewer than k", which the page's table beside
the chart says in words. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from xml.etree import ElementTree

import pygal
from pygal.style import Style

LABELS = {
    "nl": {"x": "week", "y": "aantal kinderen", "trend": "trend"},
    "en": {"x": "week", "y": "children", "trend": "trend"},
}
# Colours that keep 4.5:1 against white, each also told apart by its dot shape in the
# legend order and by the table beside the chart.
COLOURS = ("#154273", "#b3261e", "#2e6b30", "#8a4b00", "#5b1a7a", "#00626b", "#3d3d3d")


def theme_label(theme: str) -> str:
    return theme.replace("_", " ")


def chart_svg(cells: Sequence[dict[str, Any]], language: str = "nl") -> bytes:
    """One line per theme over the weeks any cell of the wijk has; a raised trend as a
    larger, outlined point with its value marked."""
    words = LABELS.get(language, LABELS["nl"])
    weeks = sorted({c["window"] for c in cells})
    themes = sorted({c["theme"] for c in cells})
    chart = pygal.Line(
        style=Style(
            colors=COLOURS,
            background="white",
            plot_background="white",
            foreground="#1b1b1b",
            foreground_strong="#1b1b1b",
            foreground_subtle="#595959",
            font_family="system-ui, sans-serif",
            value_font_size=11,
            label_font_size=11,
            legend_font_size=12,
            title_font_size=14,
        ),
        js=[],  # no script: the SVG is shown as an image
        disable_xml_declaration=True,
        show_legend=True,
        legend_at_bottom=True,
        legend_at_bottom_columns=3,
        print_values=True,
        dots_size=3,
        x_title=words["x"],
        y_title=words["y"],
        x_label_rotation=30,
        include_x_axis=True,
        min_scale=2,
        width=720,
        height=360,
        allow_interruptions=True,
    )
    chart.x_labels = weeks
    for theme in themes:
        by_week = {c["window"]: c for c in cells if c["theme"] == theme}
        chart.add(theme_label(theme), [_point(by_week.get(week), words) for week in weeks])
    tree = chart.render_tree()
    # pygal puts its configuration in an inline script even without its scripts, and its
    # credits with links in comments: both go, so the SVG holds drawing and text only.
    for parent in list(tree.iter()):
        for child in list(parent):
            if child.tag is ElementTree.Comment or str(child.tag).endswith("script"):
                parent.remove(child)
    drawn: bytes = ElementTree.tostring(tree, encoding="utf-8")
    return drawn


def _point(cell: dict[str, Any] | None, words: dict[str, str]) -> Any:
    if cell is None:
        return None  # fewer than k: no point, the line breaks
    if not cell["trend"]:
        return cell["children"]
    return {
        "value": cell["children"],
        "label": words["trend"],
        "node": {"r": 7},
        "style": "stroke: #1b1b1b; stroke-width: 3",
        "formatter": lambda n: f"{n} ▲",
    }
