"""What the master reads back from the database twice a second: paused queues and cancel requests.

A pause or a cancel is a row written by anyone (``relieve_app.control``, the admin, a command) on
any host; every master polls for them, so no socket or host needs to be reached. A paused lane
hands out nothing, and gives back READY the ids it claimed and has not started. A task whose
cancel was asked, if this master runs it, has its child's whole process group killed (the pool
starts a new child) and ends FAILED with ``TaskCancelled``; one claimed and not started never
starts, and ends so without an attempt.
"""

import asyncio
import contextlib
import logging
import os
import signal

from relieve_app.models import PausedQueue, TaskRecord
from relieve_app.tasks.cancel import CONTROL_INTERVAL
from relieve_app.tasks.store.recorder import reads_only

log = logging.getLogger(__name__)


@reads_only
def read(owner, holding):
    """``(paused queue names, ids among holding whose cancel was asked)``."""
    paused = set(PausedQueue.objects.values_list("name", flat=True))
    cancels = set()
    if holding:
        cancels = set(
            TaskRecord.objects.filter(
                pk__in=list(holding),
                owner=owner,
                status=TaskRecord.Status.RUNNING,
                cancel_requested_at__isnull=False,
            ).values_list("pk", flat=True)
        )
    return paused, cancels


async def control_loop(master, stopping):
    while not stopping.is_set():
        try:
            paused, cancels = await master.recorder.submit(read, master.owner, set(master._running))
            apply_pauses(master, paused)
            for task_id in cancels:
                stop_child_of(master, task_id)
        except Exception:
            log.exception("reading pauses and cancels failed; trying again in %gs", CONTROL_INTERVAL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), CONTROL_INTERVAL)


def apply_pauses(master, paused):
    for name, lane in master.lanes.items():
        now = name in paused
        if now != lane.paused:
            log.info("queue %s %s", name, "paused: no task of it starts" if now else "resumed")
            lane.paused = now
            lane.wake.set()
            lane.recall.set()  # ids held ahead are given back, READY, rather than started
    master.paused = set(paused)


def stop_child_of(master, task_id):
    """Kill the child running ``task_id``, with everything it started; its attempt ends cancelled.

    An id held ahead and not started yet is only marked: it never reaches the child, and ends
    cancelled without an attempt (``Dispatching._turn``).
    """
    if task_id in master.cancelling:
        return
    for lane in master.lanes.values():
        name = lane.holds(task_id)
        if name is None:
            continue
        if lane.running.get(name) != task_id:
            lane.cancelled.add(task_id)
            lane.recall.set()
            return
        child = lane.pool.tasks.get(name)
        if child is not None and child.running:
            master.cancelling.add(task_id)
            log.warning("task %s cancelled: killing child %s (pid %s)", task_id, name, child.pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)  # a session leader: its group is all it started
        return
