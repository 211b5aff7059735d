"""The ids a master holds: each once, ready in its lane now or after a delay.

A lane holds at most RELIEVE_MAX_HELD ready ids (``options.max_held``). Past that, an id heard of
over the socket or from NOTIFY stays in the table, where its row is committed READY, unless it is
more urgent than some the lane holds: a quarter of those then go back to the table to make room.
The queue is marked as having rows left there (``_left``), and once its lane is down to half, the
master sweeps at once (``_refill``) instead of at its next interval. A backlog of millions of tasks
thus costs the master the memory of ``max_held`` ids a queue (a third of a KiB each), and each sweep
reads at most that many rows a queue.

Ids due later (a ``run_after`` ahead, a retry's delay, a rate's wait) are held on timers only when
due within ``Options.hold_ahead`` (twice the sweep interval, at least ``MIN_HOLD_AHEAD``), and at
most ``max_held`` a queue. The others stay READY in the table, and the sweep that comes once they
are due within that time reads them. A million tasks deferred to tomorrow cost the master nothing
today, and each is still put on its timer before it is due.
"""

import asyncio
import time

from relieve_app.tasks.store import ready_rows


class Queueing:
    """Part of ``Master``: ``_known`` holds every id this master has, ready, waiting or running."""

    def enqueue(self, task_id, queue="default", priority=0, delay=0.0, at=None):
        """Take a task id unless this master already has it, or its lane is full of more urgent
        ones; ready now, or after ``delay`` seconds."""
        if task_id in self._known or queue not in self.lanes:
            return False
        at = time.time() + delay if at is None else at
        if delay <= 0 and not self._room_in(self.lanes[queue], priority, at):
            return False
        self._known[task_id] = (queue, priority, at)
        if delay > 0:
            return self._later(task_id, delay)
        self._ready(task_id)
        return True

    def _room_in(self, lane, priority, at):
        """Whether ``lane`` may take one more ready id, after giving the least urgent it holds back
        to the table if this one is more urgent than they are."""
        if len(lane) < self.options.max_held:
            return True
        self._left.add(lane.name)
        dropped = lane.make_room(priority, at, max(1, self.options.max_held // 4))
        for task_id in dropped:
            self._known.pop(task_id, None)
        return bool(dropped)

    def _taken(self, lane):
        """An id left ``lane`` for a child: with rows left in the table, read them once it is half
        empty (half of what one sweep reads, when the limit is higher)."""
        if lane.name in self._left and len(lane) <= min(self.options.max_held, ready_rows.SWEEP_LIMIT) // 2:
            self._refill.set()

    def _ready(self, task_id):
        queue, priority, at = self._known[task_id]
        self.lanes[queue].push(task_id, priority, at)

    def _later(self, task_id, delay):
        """Ready in ``delay`` seconds, on a timer; or, when that is further than the master holds
        ahead or the queue has its fill of timers, let go: its row waits READY for a sweep."""
        queue = self._known[task_id][0]
        if delay > self.options.hold_ahead or self._deferred[queue] >= self.options.max_held:
            self._forget(task_id)
            return False

        def due():
            self._unlater(task_id)
            if task_id not in self._known:
                return
            _, priority, at = self._known[task_id]
            if self._room_in(self.lanes[queue], priority, at):
                self._ready(task_id)
            else:
                self._forget(task_id)

        self._unlater(task_id)
        self._timers[task_id] = (queue, asyncio.get_running_loop().call_later(delay, due))
        self._deferred[queue] += 1
        return True

    def _unlater(self, task_id):
        """Take ``task_id`` off its timer, if it has one; whether it had."""
        queue, timer = self._timers.pop(task_id, (None, None))
        if timer is None:
            return False
        timer.cancel()
        self._deferred[queue] -= 1
        return True

    def _forget(self, task_id):
        self._known.pop(task_id, None)
