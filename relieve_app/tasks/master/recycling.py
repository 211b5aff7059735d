"""Recycling: a child that has done enough tasks, or grown too big, is replaced once idle."""

import asyncio
import contextlib
import logging

from relieve_app.pool import RelieveError
from relieve_app.tasks.master.usage import add_sample, valid
from relieve_app.tasks.store import recorder

log = logging.getLogger(__name__)


class Recycling:
    """Part of ``Master``: counts, memory reports, and the restart of a child taken out of rotation."""

    def _count_call(self, lane, child):
        done = lane.answered(child)
        if self.options.max_calls and done >= self.options.max_calls:
            self.recycle(lane, child, f"{done} tasks done")

    def _on_usage(self, lane, child, usage):
        if valid(usage):
            self.usage.note(child.name, usage)
            self.recorder.record(add_sample, child.name, usage)
        memory = usage.get("memory", 0) if isinstance(usage, dict) else 0
        if self.options.max_memory and isinstance(memory, int) and memory > self.options.max_memory:
            limit = self.options.max_memory / 2**20
            self.recycle(lane, child, f"resident memory {memory / 2**20:.0f} MiB over {limit:g} MiB")

    def recycle(self, lane, child, reason):
        """Take the child out of rotation now; restart it once its task is done.

        Returns the asyncio task doing it, or None when it is already under way or the master stops.
        """
        if child.name in self._recycling or self._stopping.is_set():
            return None
        self._recycling.add(child.name)
        lane.pool.strategy.remove(child)
        return self._spawn(self._recycle(lane, child, reason))

    def is_recycling(self, name):
        return name in self._recycling

    async def _recycle(self, lane, child, reason):
        try:
            while (child.in_flight or child.name in lane.busy) and child.running:
                await asyncio.sleep(0.05)
            log.info("recycling child %s: %s", child.name, reason)
            self.recorder.record(recorder.add_event, child.name, "recycle", {"reason": reason})
            await child.restart()
        except RelieveError as exc:
            log.warning("recycling child %s failed: %s; its restart policy takes over", child.name, exc)
        finally:
            self._recycling.discard(child.name)
            lane.wake.set()

    # Asked each round, not when a child starts: under a limit smaller than a fresh child, a report at
    # start would recycle every child before its first send, and nothing would ever go out.
    async def _ask_usage(self, task):
        if task.running:
            with contextlib.suppress(RelieveError):
                await task.send("usage")

    async def _usage_loop(self):
        while not self._stopping.is_set():
            for lane in self.lanes.values():
                for child in lane.pool.tasks.values():
                    await self._ask_usage(child)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.options.usage_interval)
