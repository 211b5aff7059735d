"""Reloads without dropping anything: new children, one at a time, each once its current send is done.

SIGHUP, or a changed ``.py`` file under ``runrelieve --reload``, asks for a reload. The children are
replaced in turn: the one being replaced leaves the rotation, finishes what it holds and restarts;
the others keep sending meanwhile, and jobs that arrive wait in the master's queue, so nothing is
refused or lost. A new child imports the code afresh; the master's own code is not reloaded.
The zygote the children are forked from (children.py) is restarted first: forked from the old one,
a new child would run the code it had loaded.
"""

import asyncio
import logging
import os
from pathlib import Path

from relieve_app.pool import ZygoteUnavailable

log = logging.getLogger(__name__)

SKIPPED_FOLDERS = {".venv", "venv", "var", "node_modules", "__pycache__"}


class Reloader:
    """Runs one reload at a time; a request during a reload asks for one more after it."""

    def __init__(self, master):
        self.master = master
        self.busy = False
        self._wanted = asyncio.Event()
        self._reason = None

    def request(self, reason):
        """Safe from a signal handler: it only records the wish."""
        self._reason = reason
        self._wanted.set()

    async def run(self):
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            self.busy = True
            try:
                await self.reload(self._reason or "reload")
            finally:
                self.busy = False

    async def reload(self, reason):
        master = self.master
        tasks = [(lane, task) for lane in master.lanes.values() for task in lane.pool.tasks.values()]
        log.info("reloading %d children one at a time (%s)", len(tasks), reason)
        if master.zygote is not None:
            try:
                await master.zygote.restart()
            except ZygoteUnavailable as exc:
                log.warning("the zygote could not restart (%s); the new children start cold", exc)
        for lane, task in tasks:
            if master.stopping:
                return
            replacing = master.recycle(lane, task, f"reload: {reason}")
            if replacing is None:  # already being replaced: wait for that one
                while master.is_recycling(task.name):
                    await asyncio.sleep(0.05)
            else:
                await replacing
        log.info("reload done")


class StatWatcher:
    """Finds changed, added or removed ``.py`` files under ``root`` by their modification times.

    Polling, like Django's StatReloader: no extra package, works on every filesystem.
    """

    def __init__(self, root):
        self.root = Path(root)
        self._seen = self.snapshot()

    def snapshot(self):
        times = {}
        for folder, subfolders, files in os.walk(self.root):
            subfolders[:] = [d for d in subfolders if d not in SKIPPED_FOLDERS and not d.startswith(".")]
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    try:
                        times[path] = os.stat(path).st_mtime_ns
                    except OSError:
                        continue  # removed between the listing and the stat
        return times

    def changed(self):
        """Paths that differ from the last look, sorted; empty when nothing changed."""
        now = self.snapshot()
        before, self._seen = self._seen, now
        return sorted(path for path in now.keys() | before.keys() if now.get(path) != before.get(path))


async def watch(reloader, watcher, interval=1.0):
    """Ask ``reloader`` for a reload whenever ``watcher`` sees a change; runs until cancelled."""
    while True:
        await asyncio.sleep(interval)
        changed = await asyncio.to_thread(watcher.changed)
        if changed:
            more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
            log.info("%s changed%s", changed[0], more)
            reloader.request(f"{os.path.relpath(changed[0], watcher.root)} changed")
