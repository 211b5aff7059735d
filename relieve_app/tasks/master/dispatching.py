"""Dispatching: a ready id and a free child make an attempt; its outcome is written, then let go or retried.

An outcome is committed before the id is let go (``_settle``): no sweep or submit runs again what a
child already ran. The hooks an app registered for the task (``tasks/hooks.py``) hear of it once committed.
"""

import asyncio
import contextlib
import logging
import signal
import time

from relieve_app.pool import CallDropped, NotRunning, RelieveError, RemoteError, TaskExited
from relieve_app.pool.framing import FrameError
from relieve_app.tasks import attempts, hooks
from relieve_app.tasks.cancel import cancelled_error
from relieve_app.tasks.master.lanes import GIVE_BACK
from relieve_app.tasks.store.ledger import GATHER

log = logging.getLogger(__name__)


class Dispatching:
    """Part of ``Master``: one task per child at a time, from claim to committed outcome."""

    async def _dispatch_loop(self, lane):
        """Pair the lane's most urgent ready id with a child to take it (``Lane.next``)."""
        while (pair := await lane.next(self._stopping)) is not None:
            task_id, child = pair
            self._taken(lane)
            self._running.add(task_id)
            self._spawn(self._attempt(lane, child, task_id))

    def _may_gather(self):
        """Whether the ledger may wait ``GATHER`` for more writes before it starts a group: other
        tasks are in hand, and in every queue with tasks in hand a child holds twice that much work
        ahead, so a claim that waits still reaches it before it runs out."""
        if len(self._running) < 2:
            return False
        busy = [lane for lane in self.lanes.values() if any(lane.busy.values())]
        return bool(busy) and all(lane.covers(2 * GATHER) for lane in busy)

    async def _give_back_loop(self, lane):
        """Wake the ids held behind a task that turned out long (``Lane.overrun``): they go back to
        the heap, for the next free child. One look every half ``GIVE_BACK``, not a timer a task."""
        while not self._stopping.is_set():
            if lane.holds_behind_overrun():
                lane.recall.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), GIVE_BACK / 2)

    async def _attempt(self, lane, child, task_id):
        try:
            self.claiming.add(task_id)
            try:
                job = await self.ledger.claim(task_id, lane.name, child.name)
            finally:
                self.claiming.discard(task_id)
            if job is None:  # finished, running elsewhere, in another queue, or gone
                self._forget(task_id)
            elif "later" in job:  # its run_after is ahead (the database's clock), or its cap or rate holds it
                self._hold(task_id, job)
            elif "paused" in job:  # paused before this master read it: held until the resume
                lane.paused = True
                self._ready(task_id)
            else:
                await self._take_turn(lane, child, job)
                self._free_when_settled(job)  # run or given back, its place under a cap is free
        except Exception:
            log.exception("dispatching task %s failed; the sweep will hand it out again", task_id)
            self._forget(task_id)
        finally:
            self._running.discard(task_id)
            self.cancelling.discard(task_id)
            lane.cancelled.discard(task_id)
            lane.release(child, task_id)

    async def _take_turn(self, lane, child, job):
        """Send the claimed task to its child at once, behind the one it runs (claimed ahead), so
        the child starts it the moment it is done, without waiting for the master; then take this
        task's turn. Cancelled, paused or stopped before the child started it, it is dropped there
        and given back without an attempt; one whose claim came back after that is never sent."""
        if (reason := self._held_back(lane, job["id"])) is not None:
            self._withdraw(job, child, reason)
            return
        lock = lane.turn(child)
        self.ahead.add(job["id"])  # before the send: a stop waits until it is started or dropped
        try:
            call = await self._send_ahead(child, job)
            reason = await self._turn(lane, child, job["id"], lock)
            if reason is not None:
                if call is None or await self._dropped(lane, child, call, lock):
                    self._withdraw(job, child, reason)
                    return
                await lock.acquire()  # it had started: its answer is an attempt's, like any other
            try:
                await self._run(lane, child, job, call)  # it leaves ``ahead`` once its call is sent
            finally:
                lock.release()
        finally:
            self.ahead.discard(job["id"])

    async def _send_ahead(self, child, job):
        """The call of ``job`` in ``child``, sent now; None when the child does not run (it is sent
        at its turn) or the job cannot cross to it (``_run`` then records why)."""
        if not child.running:
            return None
        try:
            return await child.submit("run", self._job_for(job))
        except (RelieveError, FrameError, OSError):
            return None

    async def _dropped(self, lane, child, call, lock):
        """Whether ``call`` never ran: dropped in time, or its child died before it started it."""
        try:
            return await child.drop(call)
        except TaskExited:
            async with lock:  # how the call before it ended tells whether the child reached this one
                return lane.died_in(child, call.pid)

    async def _turn(self, lane, child, task_id, lock):
        """None once ``lock`` is held and the child runs; else why the task must not start: among
        the reasons, "behind" a task of the child's that turned out long (``_give_back_loop``)."""
        acquire = asyncio.ensure_future(lock.acquire())
        try:
            while (reason := self._held_back(lane, task_id)) is None:
                if acquire.done() and child.running:
                    return None
                if not acquire.done() and lane.overrun(child):
                    reason = "behind"
                    break
                lane.recall.clear()
                recall = asyncio.ensure_future(lane.recall.wait())
                try:
                    if acquire.done():  # a child restarting: look again every 50 ms
                        await asyncio.wait({recall}, timeout=0.05)
                    else:
                        await asyncio.wait({acquire, recall}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    recall.cancel()
        except BaseException:
            _let_go(acquire, lock)
            raise
        _let_go(acquire, lock)
        return reason

    def _job_for(self, job):
        """Without RELIEVE_FAILSAFE no lease goes with the job: a child whose master goes ends at once."""
        return job if self.options.failsafe else {**job, "lease": None}

    def _held_back(self, lane, task_id):
        if task_id in lane.cancelled:
            return "cancel"
        if self._stopping.is_set():
            return "stop"
        if lane.paused:
            return "pause"
        return None

    def _withdraw(self, job, child, reason):
        """A claim never started: its attempt is undone; cancelled it ends FAILED, else READY again
        (for this master once its queue is resumed, for any master after a stop, for the next free
        child when it was held behind a long task)."""
        task_id = job["id"]
        if reason == "cancel":
            log.warning("task %s cancelled before it started", task_id)
            error = cancelled_error("cancelled before it started")
            self._settle(task_id, self.ledger.outcome(task_id, child.name, "withdrawn", error, "cancel"))
            return
        if reason == "behind":
            log.debug(
                "task %s given back by %s, whose task runs long: the next free child takes it",
                task_id,
                child.name,
            )
        written = self.ledger.outcome(task_id, child.name, "withdrawn", None)
        self._settle(task_id, written, then=lambda: self._ready(task_id))

    async def _run(self, lane, child, job, call=None):
        """The attempt, from this task's turn to its outcome; ``call``, sent ahead, is sent again when
        the child it went to died before starting it. Its time limit counts from the turn."""
        task_id = job["id"]
        limit = job["timeout"] or self.options.call_timeout
        if call is not None and call.pid != child.pid and lane.died_in(child, call.pid):
            call = None
        lane.started(child, task_id)
        started = time.monotonic()
        pid = child.pid
        try:
            try:
                if call is None:
                    call = await child.submit("run", self._job_for(job))
                lane.sent(child, call)
                self.ahead.discard(task_id)  # a stop finds it in the lane with its call, to drop or hand over
                pid = call.pid
                answer = await child.answer(call, timeout=limit)
            except (TaskExited, TimeoutError, NotRunning):  # the child died, or is killed for its time
                lane.ended(child, pid, died=True)
                raise
            except BaseException:
                lane.ended(child, pid, died=False)
                raise
            else:
                lane.ended(child, pid, died=False)
            finally:
                lane.ran(child, time.monotonic() - started)
        except TimeoutError:
            log.warning("child %s took over %gs on task %s; killing it", child.name, limit, task_id)
            message = f"no answer from {child.name} within {limit:g}s; killed it"
            with contextlib.suppress(RelieveError):
                await child.kill(signal.SIGKILL)
            self._failed(job, child, attempts.error(TimeoutError, message), event="timeout", retry=True)
            return
        except CallDropped:  # a stop found it not started in its child yet (server._hand_over)
            self._withdraw(job, child, "stop")
            return
        except RemoteError as exc:  # the child's script has no working run(): nothing to retry
            self._failed(job, child, attempts.error(RemoteError, str(exc)), retry=False)
            return
        except (TaskExited, RelieveError) as exc:
            if task_id in self.cancelling:  # killed by controlling.py: the task was cancelled
                error = cancelled_error(f"cancelled while running; {child.name} was killed")
                self._failed(job, child, error, event="cancel", retry=False)
                return
            # Counted as an attempt: a task that kills its child every time must end FAILED.
            message = f"{child.name} went away during the task: {exc}"
            self._failed(job, child, attempts.error(TaskExited, message), retry=True)
            return
        except FrameError as exc:  # the job cannot cross to a child (too large, not UTF-8): never will
            message = f"the task cannot be handed to {child.name}: {exc}"
            self._failed(job, child, attempts.error(FrameError, message), retry=False)
            return
        except Exception as exc:  # whatever else fails handing it over is an attempt, with its reason
            message = f"handing the task to {child.name} failed: {type(exc).__name__}: {exc}"
            self._failed(job, child, attempts.error(type(exc), message), retry=True)
            return
        self._count_call(lane, child)
        kind, payload, event, retry_in = attempts.answered(job, answer, *self._retry_rules())
        if kind == "success":
            self._settle(task_id, self.ledger.outcome(task_id, child.name, "success", payload))
            # Django's "Task id=… state=SUCCESSFUL" line says it at INFO; which child, at DEBUG.
            log.debug("task %s done by %s (attempt %s)", task_id, child.name, job["attempt"])
        elif retry_in is None or not self._stopping.is_set():  # a retry cut short by the stop: released
            self._record_failure(job, child, payload, event, retry_in)

    def _failed(self, job, child, error, event="error", retry=False, delay=None):
        if retry and self._stopping.is_set():
            return  # cut short by the stop: released to READY, for any master to run again
        _kind, error, event, retry_in = attempts.failed(job, error, *self._retry_rules(), event, retry, delay)
        self._record_failure(job, child, error, event, retry_in)

    def _record_failure(self, job, child, error, event, retry_in):
        task_id, attempt = job["id"], job["attempt"]
        written = self.ledger.outcome(task_id, child.name, "failure", error, event, retry_in)
        if retry_in is None:
            log.warning("task %s failed on attempt %d: %s", task_id, attempt, error.get("message"))
            self._settle(task_id, written)
        else:
            self._settle(task_id, written, then=lambda: self._later(task_id, retry_in))

    def _retry_rules(self):
        return self.options.max_attempts, self.options.retry_after

    def _settle(self, task_id, written, then=None):
        """The id stays held until its outcome is committed, however long the database is away,
        so no sweep or submit runs again what a child already ran; then it is let go, or retried."""
        self._settling[task_id] = written

        def settled(future):
            self._settling.pop(task_id, None)
            error = None if future.cancelled() else future.exception()
            if future.cancelled() or error is not None:
                log.error("the outcome of task %s could not be recorded: %s", task_id, error)
                self._forget(task_id)
                return
            if future.result() is not None:  # a change some app's hook hears of once committed
                for pending in hooks.after_commit(future.result(), self.recorder.record):
                    self._spawn(pending)
            if then is not None and not self._stopping.is_set():
                then()
                return
            self._forget(task_id)

        written.add_done_callback(settled)


def _let_go(acquire, lock):
    """A turn not taken: the lock is released if it was acquired, else no longer waited for."""
    if acquire.done() and not acquire.cancelled() and acquire.exception() is None:
        lock.release()
    else:
        acquire.cancel()
