"""Claims and outcomes gathered while the recorder is busy, then written as one operation.

Per task, the master claims a row and later records how the attempt ended. Written one by
one, the database work of a few children already outweighs the tasks themselves; gathered,
a burst costs a handful of statements. While one group is in the recorder, new entries wait
for the next; so a quiet master writes each at once and a busy one in ever larger groups.

When its children have work enough ahead (``may_gather``, see ``Dispatching._may_gather``), the
ledger also waits a moment (``GATHER``) before it starts a group: a child's outcome, the claim of
the task it gets next and the other children's come within a few milliseconds, and written together
they cost one transaction instead of several. The tasks the children hold ahead keep them busy
meanwhile. Otherwise (a lone task, tasks too short or too long to be held ahead) each write starts
at once, as above.

Within a group, outcomes are written before claims: a task is claimed again only after the
outcome of its previous attempt was recorded (a retry), never the other way round. A group
that holds an outcome is retried until the database takes it (``Recorder.persist``): an
outcome is never dropped, only given up by ``close()`` when the master stops.

A group the database refuses for its data (PostgreSQL cannot store a NUL a task returned), or one
an app's hook fails (``hooks.HookFailed``), would never commit: its entries are written again one at
a time, so the others go through, and the one outcome that still cannot be stored is recorded as
the attempt's failure, saying why (a failing hook's error, written without that hook).
"""

import asyncio
import logging

from relieve_app.tasks.hooks import HookFailed
from relieve_app.tasks.store import taskstore
from relieve_app.tasks.store.recorder import never_commits

log = logging.getLogger(__name__)

GATHER = 0.002  # seconds a busy master waits for more entries before it starts a group


class LedgerClosed(Exception):
    """The master stopped before this write reached the database."""


class Ledger:
    def __init__(self, recorder, owner, lease, durable=True, may_gather=None, gather=GATHER):
        self.recorder = recorder
        self.owner = owner
        self.lease = lease
        self.durable = durable
        self.may_gather = may_gather  # () -> whether a group may wait ``gather`` for more; None: never
        self.gather = gather
        self._gathering = None  # the timer that starts the next group; never set while one is written
        self._claims = []  # (request, future)
        self._outcomes = []  # (outcome, future)
        self._writing = None
        self._closed = False
        self._held = {}  # for the recorder's thread alone: see taskstore.apply
        self._alone = []  # (kind, entry, future): entries of a refused group, written one at a time

    def claim(self, task_id, queue, worker_id):
        """Resolves with the job, ``{"later": seconds}``, or None (see ``taskstore.claim``)."""
        return self._add(self._claims, (task_id, queue, worker_id))

    def outcome(self, task_id, worker_id, kind, payload, event=None, retry_in=None):
        """Record how an attempt ended: ``kind`` "success" (payload: the value) or "failure" (the
        error). Resolves once it is committed, with the ``hooks.Change`` some hook wants to hear of
        after the commit, else None; raises only if the master stopped first."""
        return self._add(self._outcomes, (task_id, worker_id, kind, payload, event, retry_in))

    @property
    def busy(self):
        """Whether writes are in the recorder or waiting to go."""
        return self._writing is not None or bool(self._claims or self._outcomes or self._alone)

    def close(self):
        """No more writes: whatever has not reached the recorder fails with LedgerClosed."""
        self._closed = True
        if self._gathering is not None:
            self._gathering.cancel()
            self._gathering = None
        self._claims.extend((entry, future) for _kind, entry, future in self._alone)
        self._alone.clear()
        for entries in (self._claims, self._outcomes):
            for _entry, future in entries:
                if not future.done():
                    future.set_exception(LedgerClosed("the master stopped before writing it"))
            entries.clear()

    def _add(self, entries, entry):
        future = asyncio.get_running_loop().create_future()
        if self._closed:
            future.set_exception(LedgerClosed("the master is stopping"))
            return future
        entries.append((entry, future))
        if self._writing is not None or self._gathering is not None:
            return future  # it goes with the next group
        if self.may_gather is not None and self.may_gather():
            self._gathering = asyncio.get_running_loop().call_later(self.gather, self._gathered)
        else:
            self._flush()
        return future

    def _gathered(self):
        self._gathering = None
        self._flush()

    def _flush(self):
        if self._writing is not None or self._closed:
            return
        if self._alone:
            kind, entry, future = self._alone.pop(0)
            claims, outcomes = ([(entry, future)], []) if kind == "claim" else ([], [(entry, future)])
        elif self._claims or self._outcomes:
            claims, self._claims = self._claims, []
            outcomes, self._outcomes = self._outcomes, []
        else:
            return
        args = [self._held, [o for o, _f in outcomes], [c for c, _f in claims], self.owner, self.lease]
        committed = {}  # task id -> change, filled on the recorder's thread, read once committed
        args += [self.durable, committed]
        write = self.recorder.persist if outcomes else self.recorder.submit
        self._writing = asyncio.ensure_future(write(taskstore.apply, *args))
        self._writing.add_done_callback(lambda done: self._written(done, claims, outcomes, committed))

    def _written(self, done, claims, outcomes, committed):
        self._writing = None
        error = asyncio.CancelledError() if done.cancelled() else done.exception()
        refused = error is not None and never_commits(error) and not self._closed
        if refused and self._refused(error, claims, outcomes):
            self._flush()
            return
        if error is not None:
            log.error("writing %d outcomes and %d claims failed: %s", len(outcomes), len(claims), error)
        results = [committed.get(outcome[0]) for outcome, _f in outcomes]
        results += done.result() if error is None else [None] * len(claims)
        for (_entry, future), result in zip([*outcomes, *claims], results, strict=True):
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
        self._flush()

    def _refused(self, error, claims, outcomes):
        """Whether a write the database refused for its data is taken care of by writing again.

        A group is split into single writes. A single outcome becomes the attempt's failure,
        naming the refusal; one an app's hook failed becomes the hook's error, written without
        that hook. A failure that is itself refused, or a claim, fails as it is.
        """
        if len(claims) + len(outcomes) > 1:
            log.warning(
                "the database refused a group of %d writes (%s); writing each alone",
                len(claims) + len(outcomes),
                error,
            )
            self._alone[:0] = [
                *(("outcome", entry, future) for entry, future in outcomes),
                *(("claim", entry, future) for entry, future in claims),
            ]
            return True
        if not outcomes:
            return False
        entry, future = outcomes[0]
        task_id, worker_id, kind, payload, event, _retry_in = entry[:6]
        without = tuple(entry[6]) if len(entry) > 6 else ()
        if isinstance(error, HookFailed):
            if error.hook in without:
                return False
            failure, event, without = error.as_error(), "error", (*without, error.hook)
        else:
            message = f"the outcome of this attempt cannot be stored: {error}".strip()
            if kind == "failure" and payload.get("message") == message:
                return False
            kind_of = type(error)
            failure = {
                "exception_class_path": f"{kind_of.__module__}.{kind_of.__qualname__}",
                "message": message,
                "traceback": "",
            }
        log.error("task %s: %s", task_id, failure["message"])
        entry = (task_id, worker_id, "failure", failure, event, None, without)
        self._alone.insert(0, ("outcome", entry, future))
        return True
