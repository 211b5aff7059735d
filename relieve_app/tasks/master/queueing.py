"""The ids a master holds: each once, ready in its lane now or after a delay."""

import asyncio
import time


class Queueing:
    """Part of ``Master``: ``_known`` holds every id this master has, ready, waiting or running."""

    def enqueue(self, task_id, queue="default", priority=0, delay=0.0, at=None):
        """Take a task id unless this master already has it; ready now, or after ``delay`` seconds."""
        if task_id in self._known or queue not in self.lanes:
            return False
        self._known[task_id] = (queue, priority, time.time() + delay if at is None else at)
        if delay > 0:
            self._later(task_id, delay)
        else:
            self._ready(task_id)
        return True

    def _ready(self, task_id):
        queue, priority, at = self._known[task_id]
        self.lanes[queue].push(task_id, priority, at)

    def _later(self, task_id, delay):
        def due():
            self._timers.pop(task_id, None)
            if task_id in self._known:
                self._ready(task_id)

        self._timers[task_id] = asyncio.get_running_loop().call_later(delay, due)

    def _forget(self, task_id):
        self._known.pop(task_id, None)
