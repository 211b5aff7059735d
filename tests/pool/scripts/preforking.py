"""A parent that forks its zygote from itself (``fork_zygote``), as runrelieve does, then starts one
child from it and prints what it saw as one JSON line. Run as a script: a fork of the test process
itself would copy pytest's threads' locks.

    python preforking.py [--thread]   --thread: another thread runs at the fork (no prefork then)
"""

import asyncio
import json
import os
import sys
import threading
from pathlib import Path

from relieve_app.pool import CallableTask, Zygote, fork_zygote

SCRIPTS = Path(__file__).parent
LOADED_BEFORE_FORK = "xml.dom.minidom"  # imported here: a forked zygote has it without a preload


def parent_of(pid):
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rfind(")") + 2 :].split()[1])


async def scenario(preforked):
    zygote = Zygote(preforked=preforked)
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
        }
    finally:
        await task.stop()
        await zygote.stop()
        if preforked is not None:
            await preforked.wait()


def main():
    __import__(LOADED_BEFORE_FORK)
    stop = threading.Event()
    if "--thread" in sys.argv:
        threading.Thread(target=stop.wait, daemon=True).start()
    preforked = fork_zygote([])
    stop.set()
    print(json.dumps(asyncio.run(scenario(preforked))))


if __name__ == "__main__":
    main()
