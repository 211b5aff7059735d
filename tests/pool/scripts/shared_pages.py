"""What ``shared_image`` does to a process, run in a process of its own (it changes every object of
the process it runs in), printed as one JSON line.

    python shared_pages.py probe          an object's count before and after immortalize()
    python shared_pages.py fork [--mortal]  MiB a forked child copies by settling again, as a
                                            zygote does, then reading what was loaded
"""

import json
import os
import sys
from pathlib import Path

from relieve_app.pool import shared_image

LOADED = 200_000  # strings made before the fork: about 12 MiB of pages


def probe():
    before = [1, 2, 3]
    mortal = sys.getrefcount(before)
    supported = shared_image.supported()
    changed = shared_image.immortalize()
    held = [before] * 1000
    immortal = sys.getrefcount(before)
    del held
    return {
        "supported": supported,
        "changed_some": changed > 0,
        "mortal_count_small": mortal < 100,
        "count": immortal,
        "count_after_references_dropped": sys.getrefcount(before),
        "again_few": shared_image.immortalize() < 10,  # only what was made since
        "made_after": sys.getrefcount([4, 5]) < 100,
    }


def private_mib():
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Private_Dirty:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no Private_Dirty in smaps_rollup")


def fork(immortal):
    loaded = [f"string number {n}" for n in range(LOADED)]
    shared_image.settle(immortal)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        before = private_mib()
        shared_image.settle(immortal)  # as the zygote forked from a master does before its forks
        total = 0
        for text in loaded:  # each reference taken counts on the string's own page
            total += len(text)
        os.write(write_end, json.dumps(private_mib() - before).encode())
        os._exit(0)
    os.close(write_end)
    copied = json.loads(os.read(read_end, 100))
    os.waitpid(pid, 0)
    return {"copied_mib": copied}


if __name__ == "__main__":
    if sys.argv[1] == "probe":
        print(json.dumps(probe()))
    else:
        print(json.dumps(fork(immortal="--mortal" not in sys.argv)))
