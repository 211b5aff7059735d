"""A parent that forks its zygote from itself (``fork_zygote``), as runrelieve does, then starts one
child from it and prints what it saw as one JSON line. Run as a script: a fork of the test process
itself would copy pytest's threads' locks.

    python preforking.py [--thread] [--mortal]   --thread: another thread runs at the fork (no
        prefork then); --mortal: what was loaded is not made immortal

The parent imports tests/pool/scripts/warming.py, which registers a warm-up: the child reports
where it ran.
"""

import asyncio
import json
import os
import sys
import threading
from pathlib import Path

from relieve_app.pool import CallableTask, Zygote, fork_zygote
from relieve_app.pool.shared_image import IMMORTAL

SCRIPTS = Path(__file__).parent
LOADED_BEFORE_FORK = "xml.dom.minidom"  # imported here: a forked zygote has it without a preload
WARMING = "tests.pool.scripts.warming"


def parent_of(pid):
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2 :].split()[1])


async def scenario(preforked):
    zygote = Zygote(preforked=preforked, immortal="--mortal" not in sys.argv)
    task = CallableTask(f"{SCRIPTS / 'calc.py'}:Calc", zygote=zygote)
    await task.start()
    try:
        return {
            "preforked": preforked is not None,
            "zygote_parent_is_us": parent_of(zygote.pid) == os.getpid(),
            "zygote_session": os.getsid(zygote.pid) == zygote.pid,
            "child_parent_is_zygote": parent_of(task.pid) == zygote.pid,
            "child_answers": await task.get("add", 2, 3),
            "child_has_what_we_loaded": await task.get("loaded", LOADED_BEFORE_FORK),
            "child_sees_it_immortal": await task.get("count_of", LOADED_BEFORE_FORK, "parseString")
            == IMMORTAL,
            "warm_up_ran_in": await task.get("attribute", WARMING, "warmed"),
            "parent": os.getpid(),
        }
    finally:
        await task.stop()
        await zygote.stop()
        if preforked is not None:
            await preforked.wait()


def main():
    __import__(LOADED_BEFORE_FORK)
    __import__(WARMING)
    stop = threading.Event()
    if "--thread" in sys.argv:
        threading.Thread(target=stop.wait, daemon=True).start()
    preforked = fork_zygote([], immortal="--mortal" not in sys.argv)
    stop.set()
    print(json.dumps(asyncio.run(scenario(preforked))))


if __name__ == "__main__":
    main()
