"""The documentation by audience, as a site: `make docs` builds it into .local/site/.
`make test` builds it with warnings as errors, so a broken link or anchor between the
pages fails the run. Markdown pages (MyST); the theme is served from the project itself."""

project = "vroegsignaal"
author = "vroegsignaal"
extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "screenshots"]
myst_heading_anchors = 3  # [..](page.md#a-section) links are checked like pages
myst_enable_extensions = ["colon_fence"]
html_theme = "furo"
html_title = "vroegsignaal"
html_static_path: list[str] = []
language = "en"
