"""Bodies within the form's limits that Markdown would take minutes on, or recurse over."""

HOSTILE_BODIES = {
    "dash-nesting": "- " * 500 + "x",
    "definition-lists": "a\n: b\n" * 500,
    "bracket-run": "[" * 19_999,
    "image-openers": "![" * 10_000,
    "link-targets": "[a](" * 5_000,
}
