"""Sphinx configuration: Markdown pages (MyST) with the furo theme; `make test` builds them with -W."""

project = "relieve for Django"
author = "relieve for Django"
copyright = "relieve for Django"

extensions = ["myst_parser"]
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3  # "#the-json-api"-style links to any heading down to ###
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
root_doc = "index"

html_theme = "furo"
html_title = "relieve for Django"
pygments_style = "friendly"
