"""WCAG 2.1 A and AA checks of a page in the real browser, by axe-core (the copy that
`axe-playwright-python` pins): a test fails on any violation, naming each rule, its
impact and the elements it found."""

from __future__ import annotations

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page

WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


async def assert_accessible(page: Page, where: str) -> None:
    results = await Axe().run(
        page,
        options={"runOnly": {"type": "tag", "values": WCAG_21_AA}, "resultTypes": ["violations"]},
    )
    found = [
        f"{v['id']} ({v['impact']}): {v['help']}; "
        + "; ".join(", ".join(n["target"]) for n in v["nodes"][:5])
        for v in results.response["violations"]
    ]
    assert not found, f"axe-core finds WCAG 2.1 AA violations on {where}:\n" + "\n".join(found)
