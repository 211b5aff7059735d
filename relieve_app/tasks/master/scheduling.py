"""The master's schedule tick: every ``TICK`` seconds, enqueue the due slots of RELIEVE_SCHEDULE.

Every master ticks; the database lets one insert of each slot commit (``tasks/schedule/due.py``).
The master that inserted a run takes it at once; on PostgreSQL the others hear of it too.
"""

import asyncio
import contextlib
import logging

from relieve_app.tasks.schedule import due, entries

log = logging.getLogger(__name__)

TICK = 0.5  # seconds: how late a slot may start, at most, while a master is up


async def tick_loop(master, stopping):
    schedule = entries.load()
    if not schedule:
        return
    log.info("periodic tasks: %s", ", ".join(f"{name} ({e.rule.text})" for name, e in schedule.items()))
    while not stopping.is_set():
        try:
            for row in await master.recorder.submit(due.enqueue_due, schedule):
                log.info("schedule %s: slot %s enqueued as task %s", row.schedule, row.schedule_slot, row.pk)
                master.enqueue(row.pk, row.queue_name, row.priority)
        except Exception:
            log.exception("the schedule tick failed; trying again in %gs", TICK)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), TICK)
