"""Worst-case render time against a normal body: what a hostile body costs a child now.

Usage: python bench/render.py [--repeat 5]

Each body goes through the Renderer a child keeps (shape check, renderer process, deadline). The
worst of the hostile bodies is compared with a normal one of the same length. The last line is for
scripts: ``render worst-ms=<ms> normal-ms=<ms> ratio=<worst/normal> deadline-ms=<ms>``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import argparse
import statistics
import time

from relieve_app.contact.render import Renderer
from tests.hostile_bodies import HOSTILE_BODIES

BODY_MAX = 20_000  # the form's limit (relieve_app.contact.forms needs Django set up)
NORMAL = "Hello **there**, a message.\n\n- one\n- two\n\n> quoted [site](https://example.com)\n\n"
HOSTILE = {
    **HOSTILE_BODIES,
    "backticks": ("``a`" * 5_000)[:BODY_MAX],  # not caught by the shape check: the deadline stops it
    "html-attributes": ("<a " * 6_667)[:BODY_MAX],
}


def median_ms(renderer, body, repeat):
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        renderer.render(body)
        times.append((time.perf_counter() - started) * 1000)
        renderer.render("*ready*")  # untimed: a killed renderer's successor has started, as between mails
    return statistics.median(times)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args(argv)
    with Renderer() as renderer:
        renderer.render("warm *up*")
        normal = median_ms(renderer, (NORMAL * 300)[:BODY_MAX], options.repeat)
        print(f"{'normal (20,000 chars)':24} {normal:9.1f} ms  html")
        worst = 0.0
        for name, body in HOSTILE.items():
            ms = median_ms(renderer, body, options.repeat)
            outcome = renderer.render(body).fallback or "html"
            print(f"{name:24} {ms:9.1f} ms  {outcome[:70]}")
            worst = max(worst, ms)
    deadline = renderer.timeout * 1000
    ratio = worst / normal
    print(f"render worst-ms={worst:.1f} normal-ms={normal:.1f} ratio={ratio:.2f} deadline-ms={deadline:.0f}")


if __name__ == "__main__":
    main()
