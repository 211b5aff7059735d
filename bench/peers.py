"""relieve against what people would pick instead, on the same contact mail, in one run.

Usage (from the repository root; `make bench-peers` installs the peers and runs it):
    var/peers-venv/bin/python bench/peers.py [--quick] [--systems relieve,celery-reliable,...]
        [--databases postgres,sqlite] [--messages 2000] [--repeats 3] [--during-rate R] [--keep]
        [--request-clock]

Each system gets a fresh database, gunicorn serving the contact page, and 4 worker processes; the
same SMTP sink receives every mail. ``--request-clock`` also splits each POST's time inside Django
into CPU, waiting for a core and the rest (``peerbench/request_clock.py``). See bench/README.md
for what is measured and the figures. The last line is for scripts:
``peers best-peer=<name> post-p50-ratio=<x> delivered-per-s-ratio=<x> rss-ratio=<x> lost=<n> dup=<n>``.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.peerbench.runner import main

if __name__ == "__main__":
    sys.exit(main())
