"""Scaling: a queue given a range of children (``mail=4-16``) grows while its tasks wait, and stops
the children it no longer needs once they sit idle.

A child runs one task at a time, so a queue whose tasks mostly wait on another host (an SMTP
server far away, an HTTP API) has only as many of them in progress as it has children. Given a
range, a queue grows when ids wait in its heap and no child may take one, its children wanted a
CPU core (ran on one, or waited for one) for less than ``WAITING`` of the time over the last span,
and the machine's cores were idle ``SPARE`` of that time or more (``demand.py``). It grows by as
many children as the idle cores beyond ``SPARE`` can feed, each wanting what its children did, and
no more than ids wait or the range's most allows. Children that want the cores most of the time,
children on a machine whose cores are all busy, and children whose tasks take less than
``GROW_FROM`` (on average, or the one running longest when none has ended yet) are bound by the
master and the cores, where more children would only cost memory. Where none of this can be
measured (not Linux), a queue whose children are all busy doubles at each look. A child idle for
RELIEVE_SCALE_DOWN_AFTER seconds is stopped while the queue has more than the range's least, the
longest idle first.

As at a recycle, a child to be stopped is first taken out of rotation, and only while it holds no
id: no task is cut short, and no reload or recycle picks it meanwhile. The next child the queue
grows by takes the lowest free name.
"""

import asyncio
import contextlib
import logging
import time

from relieve_app.pool import RelieveError
from relieve_app.tasks.master.demand import MEASURABLE, Headroom
from relieve_app.tasks.store import recorder

log = logging.getLogger(__name__)

LOOK = 0.1  # seconds between two looks at a queue that may scale
GROW_FROM = 0.01  # seconds: a queue whose tasks take less than this on average does not grow
BACK_OFF = 5.0  # seconds a queue does not grow after one of its new children failed to start
WAITING = 0.5  # a queue grows only while its children wanted a core for less than this share of the time
SPARE = 0.2  # ... and the machine's cores were idle for this share of it or more


def to_add(lane):
    """How many children ``lane`` could use now: one for each id waiting for a child, within its most."""
    count = len(lane.pool.tasks)
    if count >= lane.most or lane.paused or not len(lane):
        return 0
    taking = lane.longest_running() if lane.average is None else lane.average
    if taking < GROW_FROM or lane.free_child() is not None:
        return 0
    starting = sum(1 for child in lane.pool.tasks.values() if not child.running)
    return max(0, min(lane.most - count, len(lane) - starting))


def to_stop(lane, after, now=None):
    """The children of ``lane`` idle ``after`` seconds or more, the longest idle first, as many as it
    has beyond its least."""
    now = time.monotonic() if now is None else now
    spare = len(lane.pool.tasks) - lane.size
    if spare <= 0:
        return []
    idle = []
    for child in lane.pool.strategy.tasks:  # running and in rotation
        since = lane.idle_since.get(child.name)
        if since is not None and now - since >= after and child.name not in lane.busy and not child.in_flight:
            idle.append((since, child))
    idle.sort(key=lambda pair: pair[0])
    return [child for _since, child in idle[:spare]]


class Scaling:
    """Part of ``Master``: the queues given a range of children grow and shrink within it."""

    async def _scale_loop(self, lane):
        calm_until = 0.0
        while not self._stopping.is_set():
            if time.monotonic() >= calm_until and not await self._grow(lane):
                calm_until = time.monotonic() + BACK_OFF
            for child in to_stop(lane, self.options.scale_down_after):
                await self._retire(lane, child)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), LOOK)

    async def _grow(self, lane):
        """Start the children ``lane`` needs now; False when one of them could not start."""
        headroom = self._headroom.setdefault(lane.name, Headroom(WAITING, SPARE))
        wanted = to_add(lane)
        if not wanted or self.reloader.busy or self._stopping.is_set():
            headroom.forget()  # the shares that decide cover only looks where the queue needed more
            return True
        count = min(wanted, self._more_that_help(lane, headroom))
        if not count:
            return True
        headroom.forget()
        children = [self._add_child(lane) for _ in range(count)]
        log.info("queue %s grows to %d children: %d tasks wait", lane.name, len(lane.pool.tasks), len(lane))
        results = await asyncio.gather(*(child.start() for child in children), return_exceptions=True)
        started = True
        for child, result in zip(children, results, strict=True):
            if isinstance(result, BaseException):
                log.warning(
                    "child %s could not start (%s); queue %s grows no more for %gs",
                    child.name,
                    result,
                    lane.name,
                    BACK_OFF,
                )
                await self._drop_child(lane, child)
                started = False
        return started

    def _more_that_help(self, lane, headroom):
        """How many more children would help ``lane``, whose children are all busy (``Headroom``);
        where that cannot be measured (not Linux), as many as it has."""
        if not MEASURABLE:
            return len(lane.pool.tasks)
        more, wanted, idle = headroom.for_more([child.pid for child in lane.pool.strategy.tasks if child.pid])
        if more == 0:
            log.debug(
                "queue %s does not grow: its children wanted a core %.0f%% of the time, cores idle %.0f%%",
                lane.name,
                wanted * 100,
                idle * 100,
            )
        return more or 0  # None: a first look, the next span tells

    async def _retire(self, lane, child):
        """Stop ``child`` for good, out of rotation first, unless it took an id since ``to_stop``
        chose it (while the child before it was being stopped)."""
        name = child.name
        if name in self._recycling or self.reloader.busy or self._stopping.is_set():
            return
        if name in lane.busy or child.in_flight or child not in lane.pool.strategy.tasks:
            return
        self._recycling.add(name)  # no recycle, reload or dispatch takes it meanwhile
        self._retiring.add(name)
        lane.pool.strategy.remove(child)
        idle = time.monotonic() - lane.idle_since.get(name, time.monotonic())
        try:
            log.info("queue %s stops child %s, idle %.0fs", lane.name, name, idle)
            self.recorder.record(recorder.add_event, name, "retire", {"idle": round(idle, 1)})
            await self._drop_child(lane, child)
        finally:
            self._retiring.discard(name)
            self._recycling.discard(name)
            lane.wake.set()

    async def _drop_child(self, lane, child):
        """Stop ``child`` for good and take it out of ``lane``; stopped first, so that a stop of the
        master meanwhile still finds it in the lane, and stops it with the others."""
        with contextlib.suppress(RelieveError):
            await child.stop()
        await lane.pool.remove(child.name)
        lane.forget(child.name)
