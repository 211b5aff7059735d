"""Bodies whose shape makes Python-Markdown slow or recursive, found in one linear pass.

Markdown is not asked to render these at all: they go out as text only, at once. Two shapes are
known to cost far more than their length:
- nesting: each list, quote or definition marker opening a line nests one level deeper, and a few
  hundred levels ("- - - ... x") exhaust the interpreter's stack;
- brackets: the link and image patterns scan from every "[" to its matching "]" (and from every
  "](" to its ")"), to the end of the text when there is none, so unmatched openers cost time
  quadratic in their number ("[" * 19999 takes minutes).
Anything this misses is still bounded by the renderer's deadline (render.py); this pass makes the
known cases cheap and their outcome independent of the machine's load.
"""

import re

MAX_DEPTH = 32  # nesting levels on one line; people write a handful
MAX_BRACKET_SCAN = 200_000  # characters the link patterns would scan, ~0.1 s of Markdown

BLOCKS = re.compile(r"\n[ \t]*\n")  # inline patterns scan within a block, never across a blank line
MARKER = re.compile(r"[ \t]*(?:>|(?:[-*+:]|\d{1,9}[.)])(?=[ \t]|$))")


def too_complex(text):
    """Why Markdown could not render `text` in bounded time, or None when it can."""
    depth = max_depth(text)
    if depth > MAX_DEPTH:
        return f"nested {depth} levels deep (at most {MAX_DEPTH} are rendered)"
    scan = bracket_scan(text)
    if scan > MAX_BRACKET_SCAN:
        return f"too many brackets to match ({scan:,} characters to scan, at most {MAX_BRACKET_SCAN:,})"
    return None


def max_depth(text):
    """The most list, quote and definition markers opening any one line."""
    deepest = 0
    for line in text.split("\n"):
        depth, position = 0, 0
        while match := MARKER.match(line, position):
            depth, position = depth + 1, match.end()
        deepest = max(deepest, depth)
    return deepest


def bracket_scan(text):
    """Characters the link patterns would scan: from each opener to its closer, or to the block's end."""
    return sum(_scan(block) for block in BLOCKS.split(text))


def _scan(block):
    total = 0
    brackets, parens = [], []
    for position, char in enumerate(block):
        if char == "[":
            brackets.append(position)
        elif char == "]" and brackets:
            total += position - brackets.pop()
        elif char == "(":
            # Only "](" starts a link target; other parentheses count for nesting alone.
            parens.append(position if position and block[position - 1] == "]" else None)
        elif char == ")" and parens:
            opened = parens.pop()
            if opened is not None:
                total += position - opened
    end = len(block)
    total += sum(end - opened for opened in brackets)
    total += sum(end - opened for opened in parens if opened is not None)
    return total
