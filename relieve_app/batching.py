"""Claims and outcomes gathered while the recorder is busy, then written as one operation.

Per task, the master claims a row and later records how the attempt ended. Written one by
one, the database work of a few children already outweighs the tasks themselves; gathered,
a burst costs a handful of statements. While one group is in the recorder, new entries wait
for the next; so a quiet master writes each at once and a busy one in ever larger groups.

Within a group, outcomes are written before claims: a task is claimed again only after the
outcome of its previous attempt was recorded (a retry), never the other way round.
"""

import asyncio
import logging

from . import taskstore

log = logging.getLogger(__name__)


class Ledger:
    def __init__(self, recorder, owner, lease):
        self.recorder = recorder
        self.owner = owner
        self.lease = lease
        self._claims = []  # (request, future)
        self._outcomes = []
        self._writing = None
        self._held = {}  # for the recorder's thread alone: see taskstore.apply

    def claim(self, task_id, queue, worker_id):
        """Resolves with the job, ``{"later": seconds}``, or None (see ``taskstore.claim``)."""
        future = asyncio.get_running_loop().create_future()
        self._claims.append(((task_id, queue, worker_id), future))
        self._flush()
        return future

    def outcome(self, task_id, worker_id, kind, payload, event=None, retry_in=None):
        """Record how an attempt ended: ``kind`` "success" (payload: the value) or "failure" (the error)."""
        self._outcomes.append((task_id, worker_id, kind, payload, event, retry_in))
        self._flush()

    async def drain(self):
        """Wait until everything handed over so far is written (or failed)."""
        while self._writing is not None or self._claims or self._outcomes:
            if self._writing is not None:
                await asyncio.wait({self._writing})
            else:
                self._flush()

    def _flush(self):
        if self._writing is not None or not (self._claims or self._outcomes):
            return
        claims, self._claims = self._claims, []
        outcomes, self._outcomes = self._outcomes, []
        requests = [request for request, _future in claims]
        written = self.recorder.submit(
            taskstore.apply, self._held, outcomes, requests, self.owner, self.lease
        )
        self._writing = asyncio.ensure_future(written)
        self._writing.add_done_callback(lambda done: self._written(done, claims, len(outcomes)))

    def _written(self, done, claims, outcomes):
        self._writing = None
        error = asyncio.CancelledError() if done.cancelled() else done.exception()
        if error is not None:
            log.error("writing %d outcomes and %d claims failed: %s", outcomes, len(claims), error)
        for index, (_request, future) in enumerate(claims):
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(done.result()[index])
        self._flush()
