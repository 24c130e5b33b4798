"""The README's links into the documentation lead somewhere. (Links between the pages
in docs/ are checked by `make docs`, which `make test` runs with warnings as errors.)"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_every_relative_link_in_the_readme_leads_to_a_file_and_its_section() -> None:
    text = (ROOT / "README.md").read_text()
    links = [t for t in LINK.findall(text) if not t.startswith(("http://", "https://"))]
    assert any(t.startswith("docs/") for t in links)  # the README points into the docs
    for target in links:
        path, _, anchor = target.partition("#")
        assert (ROOT / path).is_file(), f"README links to {target}, which does not exist"
        if anchor:
            prose = re.sub(r"(?ms)^```.*?^```", "", (ROOT / path).read_text())  # no code
            headings = {
                re.sub(r"[^a-z0-9 -]", "", h.lower()).strip().replace(" ", "-")
                for h in re.findall(r"^#+ (.+)$", prose, re.M)
            }
            assert anchor in headings, f"README links to {target}: no such section"
