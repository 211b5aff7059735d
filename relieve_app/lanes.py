"""One queue of the master: its CloudWorker of children, which of them are busy, and when to claim.

The rows themselves wait in the database, where every master claims them, highest priority
first (``claims.py``). A lane only knows that there may be work: it is poked by the socket, a
NOTIFY, a timer or the sweep, and after a claim that filled every free child, by each child
coming free. A poked lane with free children claims at once, one query for all of them.
"""

import asyncio

from .pool import CloudWorker


class Lane:
    def __init__(self, name, size):
        self.name = name
        self.size = size
        self.pool = CloudWorker()
        self.busy = {}  # child name -> the task id it runs
        self.wake = asyncio.Event()
        self.pending = False  # rows may be due: claim once a child is free
        self.more = False  # the last claim filled every free child: rows may wait behind it

    def poke(self):
        self.pending = True
        self.wake.set()

    def free_children(self):
        """The running children with nothing to do."""
        return [child for child in self.pool.strategy.tasks if child.running and child.name not in self.busy]

    async def wanted(self, stopping):
        """Wait until rows may be due and a child is free; the free children, or None once stopping."""
        while not stopping.is_set():
            if self.pending and (free := self.free_children()):
                self.pending = False
                return free
            self.wake.clear()
            await self.wake.wait()
        return None

    def release(self, child):
        self.busy.pop(child.name, None)
        if self.more:
            self.pending = True
        self.wake.set()
