"""The linear pass that keeps Markdown away from bodies it would render in quadratic time or not at all."""

import time

import pytest

from relieve_app.contact.shape import MAX_BRACKET_SCAN, MAX_DEPTH, bracket_scan, max_depth, too_complex

NORMAL = "Hello **there**, a message.\n\n- one\n  - two\n\n> quoted [site](https://example.com) (aside)\n\n"


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("plain text", 0),
        ("- one\n- two", 1),
        ("- - - x", 3),
        ("> > - 1. x", 4),
        (">>>x", 3),
        ("a\n: b", 1),
        ("-not a marker", 0),
        ("- " * 500 + "x", 500),
    ],
)
def test_depth_counts_the_markers_opening_a_line(text, depth):
    assert max_depth(text) == depth


def test_matched_brackets_cost_their_span_and_unmatched_ones_the_rest_of_the_block():
    assert bracket_scan("[ab](cd)") == 3 + 3
    assert bracket_scan("x [ab") == 3
    assert bracket_scan("[a\n\n]") == 2  # a blank line ends the block the pattern scans
    assert bracket_scan("(not a link)") == 0


@pytest.mark.parametrize(
    "body",
    [
        "- " * 500 + "x",
        "[" * 19_999,
        "![" * 10_000,
        "[a](" * 5_000,
        "[a][" * 5_000,
        "[" * 5_000 + "]" * 5_000,
        ("[" + "x" * 49) * 400,
    ],
    ids=["dash-nesting", "brackets", "image-openers", "link-targets", "references", "nested", "sparse"],
)
def test_known_quadratic_and_recursive_shapes_are_refused(body):
    assert too_complex(body) is not None


def test_ordinary_bodies_pass_even_at_the_size_limit():
    assert too_complex(NORMAL) is None
    assert too_complex((NORMAL * 300)[:20_000]) is None
    assert too_complex("- item\n" * 2_800) is None
    nested = "".join("  " * level + "- item\n" for level in range(MAX_DEPTH))
    assert too_complex(nested) is None
    assert bracket_scan((NORMAL * 300)[:20_000]) < MAX_BRACKET_SCAN


def test_the_pass_is_linear():
    """A 20,000-character body of the worst shape for this pass takes milliseconds, not seconds."""
    started = time.process_time()
    for body in ("[" * 20_000, "(" * 20_000, "- " * 10_000, "](" * 10_000):
        too_complex(body)
    assert time.process_time() - started < 2.0  # CPU time, immune to a loaded machine; ~0.05 s
