"""Finding work the socket did not bring: the sweep of the table (periodic, and at once for a lane
that is half empty with rows of its queue left in the table, ``queueing.py``), and PostgreSQL's
wake-ups."""

import asyncio
import logging
from collections import Counter

from relieve_app.tasks.store import ready_rows, taskstore

log = logging.getLogger(__name__)


class Sweeping:
    """Part of ``Master``: rows left READY by a crash, a down master, a lost ack, a retry or a full
    lane; and notifications of rows committed on other hosts."""

    async def _sweep_loop(self):
        while not self._stopping.is_set():
            self._refill.clear()
            try:
                await self.sweep()
            except Exception:
                log.exception("sweep failed; trying again in %.0fs", self.options.sweep_interval)
            await self._until_next_sweep()

    async def _until_next_sweep(self):
        """The sweep interval, cut short by the stop, or by a lane that is down to half with rows of
        its queue left in the table (``queueing.py``)."""
        waits = [asyncio.ensure_future(event.wait()) for event in (self._stopping, self._refill)]
        try:
            interval = self.options.sweep_interval
            await asyncio.wait(waits, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    async def sweep(self):
        """Take in READY rows nobody here has: left by a crash, a down master, a lost ack or a retry.

        First the rows of masters that stopped beating are taken over, and those of a master known
        to be dead (its lock beside the socket was left held by nobody); with SQLite's lock, those
        of any other master, none of which can be alive. The heartbeat renews this one's leases.
        """
        exclusive = self.lock is not None
        known, gone = set(self._known), set(self._gone)
        await self.recorder.submit(taskstore.take_back, known, self.owner, exclusive, gone)
        # Each lane is read up to the room it has (SWEEP_LIMIT at most a sweep, whatever the limit);
        # a full one keeps its mark until it is half empty.
        rooms = {name: self.options.max_held - len(lane) for name, lane in self.lanes.items()}
        rooms = {name: min(room, ready_rows.SWEEP_LIMIT) for name, room in rooms.items() if room > 0}
        self._left.difference_update(rooms)
        rows = await self.recorder.submit(ready_rows.waiting, set(self._known), rooms)
        read = Counter(queue for _id, queue, _priority, _delay in rows)
        self._left.update(name for name, room in rooms.items() if read[name] >= room)
        # Rows due within ``hold_ahead`` go on timers, as many as a queue has timers left, full
        # lane or not: the rest wait in the table for the sweeps before they are due (queueing.py).
        timers = {name: self.options.max_held - self._deferred[name] for name in self.lanes}
        timers = {name: min(room, ready_rows.SWEEP_LIMIT) for name, room in timers.items() if room > 0}
        ahead = self.options.hold_ahead
        rows += await self.recorder.submit(ready_rows.due_within, set(self._known), timers, ahead)
        # Due from now on: a row read from the table goes behind the ids of its priority this master
        # holds already (heard of over the socket when they arrived), in the table's order.
        found = 0
        for task_id, queue, priority, delay in rows:
            found += self.enqueue(task_id, queue, priority, delay)
        for queue in set(await self.recorder.submit(ready_rows.ready_queues)) - set(self.lanes):
            if queue not in self._unserved:
                self._unserved.add(queue)
                log.warning("tasks wait in queue %r, which this master does not serve", queue)
        if found:
            log.info("sweep: %d waiting tasks picked up", found)
        return found

    # wake-ups from other hosts ----------------------------------------------------

    def _on_notify(self, queue, task_id, hints):
        """PostgreSQL told every master of a committed row; the claim decides which one runs it."""
        if self._stopping.is_set():
            return
        try:
            self.handle_submit(task_id, queue, **hints)
        except (TypeError, ValueError) as exc:
            log.warning("ignoring a notification for task %s: %s", task_id, exc)

    def _on_sweep_notice(self, queue):
        """A transaction committed more rows than it announced one by one (``notifying.Batch``):
        sweep now, once for however many such notices come in while a sweep runs."""
        if not self._stopping.is_set():
            self._refill.set()

    def _on_listening(self):
        """(Re)connected to LISTEN: what was announced while deaf waits for a sweep, so sweep now."""
        if not self._stopping.is_set():
            self._spawn(self.sweep())
