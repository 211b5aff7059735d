"""One queue of the master: its CloudWorker of children and its heap of ready task ids.

Among the ids ready at the same time, the highest priority goes first, then the one due (or
enqueued) earliest. A child takes one task at a time; an id leaves the heap only when a running
child is free to take it, so a late, urgent task overtakes everything still waiting.
"""

import asyncio
import heapq
import itertools

from relieve_app.pool import CloudWorker


class Lane:
    def __init__(self, name, size):
        self.name = name
        self.size = size
        self.pool = CloudWorker()
        self.busy = {}  # child name -> the task id it runs
        self.wake = asyncio.Event()
        self._heap = []
        self._order = itertools.count()  # ties keep arrival order
        self.paused = False  # a paused queue keeps its ids and hands none out (tasks/pausing.py)

    def __len__(self):
        return len(self._heap)

    def push(self, task_id, priority, at):
        """Ready now: ``priority`` higher first, then ``at`` (a Unix time) earlier first."""
        heapq.heappush(self._heap, (-priority, at, next(self._order), task_id))
        self.wake.set()

    def free_child(self):
        """A running child with nothing to do, or None."""
        for child in self.pool.strategy.tasks:
            if child.running and child.name not in self.busy:
                return child
        return None

    async def next(self, stopping):
        """Wait for a ready id and a free child; pair them, or None once ``stopping`` is set."""
        while not stopping.is_set():
            child = self.free_child() if self._heap and not self.paused else None
            if child is not None:
                task_id = heapq.heappop(self._heap)[-1]
                self.busy[child.name] = task_id
                return task_id, child
            self.wake.clear()
            await self.wake.wait()
        return None

    def release(self, child):
        self.busy.pop(child.name, None)
        self.wake.set()
