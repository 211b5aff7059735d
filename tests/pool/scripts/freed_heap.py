"""What ``shared_image.settle`` gives back of the C heap, run in a process of its own (it freezes
every object of the process it runs in), printed as one JSON line: the MiB of the heap resident
before and after, with FREED MiB freed in its middle (a block allocated after them keeps the heap's
top, so the C library does not give them back on its own)."""

import json
from pathlib import Path

from relieve_app.pool import shared_image

FREED = 32
BLOCK = 4096  # above pymalloc's 512 bytes: each is the C library's malloc


def heap_mib():
    """Resident MiB of the process's [heap] mapping (malloc's main arena)."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and not fields[0].endswith(":"):
            inside = fields[-1] == "[heap]"
        elif inside and fields[0] == "Rss:":
            return int(fields[1]) / 1024
    return 0.0


def main():
    freed = [bytes(BLOCK) for _ in range(FREED * 2**20 // BLOCK)]
    keeps_the_top = bytes(BLOCK)
    del freed
    before = heap_mib()
    shared_image.settle()
    after = heap_mib()
    del keeps_the_top
    return {"before_mib": before, "after_mib": after}


if __name__ == "__main__":
    print(json.dumps(main()))
