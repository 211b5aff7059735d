"""A task that outlives its master: its child takes the row over, keeps its lease, records its end.

A master stopped (to restart it on new code) or killed closes the channel of every child; a child
in the middle of a task is asked ``Runner.orphaned()`` (``pool/container.py``), which comes here:

- the row moves from the master's id to the child's own (``owners.detached_owner``) in one
  conditional UPDATE. Found no longer RUNNING under either id, another master took it back (its
  predecessor was killed) and runs it again: this child exits at once, cutting its copy short;
- else a thread renews its lease every third of it, by the database's clock, while the task runs;
- the task's end is recorded here, as the master records it (``attempts.py``, ``taskstore.finish``:
  hooks in the transaction, retries READY with their ``run_after``, events, ``task_finished``,
  ``hooks.after_commit``), and the child exits.

A task still running past its time limit (its ``timeout``, else RELIEVE_CALL_TIMEOUT, from the
start of the attempt) ends as the master would end it: a ``timeout`` failure, retried while attempts
remain, and the child exits. A write that keeps failing is logged and given up: the row's lease runs
out, and a master takes it over and runs it again. A cancel asked meanwhile is not heard: the task
runs to its end.
"""

import asyncio
import logging
import os
import signal
import threading
import time

from django.db import connection, transaction

from relieve_app.models import TaskRecord
from relieve_app.tasks import attempts, hooks, owners
from relieve_app.tasks.store import leases, taskstore

log = logging.getLogger(__name__)

TRIES = 5  # of each write before it is given up to the lease
RETRY_WAIT = 0.5  # seconds, doubling between tries


class Detached:
    """One task this child finishes for a master that is gone."""

    def __init__(self, job, owner, started):
        from relieve_app.conf import app_settings

        self.job = job
        self.owner = owner
        self.lease = float(job["lease"])
        self.limit = job.get("timeout") or app_settings.RELIEVE_CALL_TIMEOUT
        self.deadline = started + self.limit  # time.monotonic(), as the master's call timeout
        self._done = threading.Event()
        self._renewer = threading.Thread(target=self._renew, name="relieve-lease", daemon=True)

    @classmethod
    def take_over(cls, job, started):
        """The task, now held by this child; None when its master's claim is no longer there."""
        if not job.get("owner") or not job.get("lease"):
            return None  # handed over by a master that does not say who it is
        owner = owners.detached_owner(job["owner"], os.getpid())
        # Asked on the child's event loop, where Django refuses to query: the write runs on a thread.
        moved = _on_a_thread(_write, leases.detach, job["id"], [job["owner"]], owner, float(job["lease"]))
        if not moved:
            log.warning("task %s was taken back after its master went; it runs elsewhere", job["id"])
            return None
        log.info("task %s outlives its master: %s finishes it", job["id"], owner)
        detached = cls(job, owner, started)
        detached._renewer.start()
        return detached

    def finish(self, answer):
        """Record how the attempt ended, as the master would have, then stop renewing the lease."""
        from relieve_app.conf import app_settings

        try:
            rules = _rules(app_settings)
            self._end(attempts.answered(self.job, answer, *rules))
        finally:
            self._done.set()
            if threading.current_thread() is not self._renewer:
                self._renewer.join()

    def _timed_out(self):
        """Past its limit, the master would have killed the child: recorded so, and the child ends."""
        from relieve_app.conf import app_settings

        message = f"no answer within {self.limit:g}s after its master stopped; its child ended"
        log.warning("task %s: %s", self.job["id"], message)
        error = attempts.error(TimeoutError, message)
        self._end(attempts.failed(self.job, error, *_rules(app_settings), "timeout", retry=True))
        logging.shutdown()
        if os.getpgid(0) == os.getpid():  # as the master's kill: what the task started goes too
            os.killpg(0, signal.SIGKILL)
        os._exit(1)

    def _end(self, entry):
        _end(self.job, self.owner, entry)

    def _renew(self):
        try:
            while not self._done.wait(self.lease / 3):
                if time.monotonic() > self.deadline:
                    self._timed_out()
                try:
                    with transaction.atomic():
                        kept = leases.renew(self.owner, [self.job["id"]], self.lease)
                except Exception as exc:
                    log.warning("could not renew the lease of task %s: %s", self.job["id"], exc)
                    _reconnect()
                    continue
                if not kept:
                    log.warning(
                        "task %s is no longer this child's; its outcome will not count", self.job["id"]
                    )
                    return
        finally:
            connection.close()


def record_unheard(answered):
    """``(job, answer)`` pairs this child answered for a master that is gone, which may never have
    read them: each is recorded here, as the master would have, while its row still shows that
    attempt RUNNING under that master. A row another master took back first runs again there.

    Asked on the child's event loop, where Django refuses to query: the writes run on a thread.
    """
    _on_a_thread(_record_unheard, answered)


def _record_unheard(answered):
    from relieve_app.conf import app_settings

    kept = [(job, answer) for job, answer in answered if job.get("owner") and job.get("lease")]
    if not kept:
        return  # RELIEVE_FAILSAFE off: the master does not say who it is
    try:  # one read, tried once: a child whose master stopped cleanly must not wait on a database away
        waiting = _unheard([job for job, _answer in kept])
    except Exception as exc:
        log.warning("could not check the last answers of this child (%s); a master may run them again", exc)
        return  # the thread's end closes the connection (_on_a_thread)
    for job, answer in kept:
        if (job["id"], job["owner"], job["attempt"]) not in waiting:
            continue  # recorded by its master, or taken back by another
        log.info("task %s: its master went before it read the answer; the child records it", job["id"])
        _end(job, job["owner"], attempts.answered(job, answer, *_rules(app_settings)))


def _unheard(jobs):
    """``(id, owner, attempt)`` of the rows of ``jobs`` still RUNNING: the answer of a job whose
    claim is among them was never recorded."""
    rows = TaskRecord.objects.filter(
        pk__in={job["id"] for job in jobs}, status=TaskRecord.Status.RUNNING
    ).values_list("pk", "owner", "worker_ids")
    return {(pk, owner, len(worker_ids)) for pk, owner, worker_ids in rows}


def _end(job, owner, entry):
    """Record an attempt's end for the row ``owner`` holds, then what the hooks do once committed.
    Its connection is closed after: the thread that asks may live on without a master to serve."""
    worker = (job.get("worker_ids") or [owner])[-1]
    try:
        for change in _record((job["id"], worker, *entry), owner).values():
            _after_commit(change)
    finally:
        connection.close()


def _record(entry, owner):
    committed = {}
    try:
        _write(taskstore.finish, {}, [entry], owner, committed)
    except hooks.HookFailed as exc:  # as the ledger does: the hook's error, written without it
        task_id, worker = entry[:2]
        refused = (task_id, worker, "failure", exc.as_error(), "error", None, (exc.hook,))
        _write(taskstore.finish, {}, [refused], owner, committed)
    except Exception:
        log.exception("the outcome of task %s could not be recorded; it runs again", entry[0])
    return committed


def _on_a_thread(fn, *args):
    """``fn(*args)`` on a thread of its own, waited for; its connection closed after."""
    outcome = {}

    def run():
        try:
            outcome["value"] = fn(*args)
        except Exception as exc:
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=run, name="relieve-takeover")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _write(fn, *args):
    """``fn(*args)`` in a transaction, tried again a few times while the database is away or busy."""
    for tries in range(1, TRIES + 1):
        try:
            with transaction.atomic():
                return fn(*args)
        except hooks.HookFailed:
            raise
        except Exception as exc:
            if tries == TRIES:
                raise
            log.warning("%s failed (%s); trying again", fn.__name__, exc)
            _reconnect()
            time.sleep(RETRY_WAIT * 2 ** (tries - 1))
    return None


def _rules(app_settings):
    """The master's rules of retries (``attempts.failed``), from the settings it read them from."""
    retry_delay, max_retry_delay = app_settings.RELIEVE_RETRY_DELAY, app_settings.RELIEVE_MAX_RETRY_DELAY
    return app_settings.RELIEVE_MAX_ATTEMPTS, lambda n: attempts.retry_after(n, retry_delay, max_retry_delay)


def _after_commit(change):
    """What an app's hook does once the outcome is committed, here, with no master to run it."""

    def record(fn, *args):
        try:
            _write(fn, *args)
        except Exception:
            log.exception("a write after the outcome of task %s failed", change.task.pk)

    try:
        for pending in hooks.after_commit(change, record):
            asyncio.run(_awaited(pending))
    except Exception:
        log.exception(
            "a hook of %s failed after the commit of task %s", change.task.task_path, change.task.pk
        )


async def _awaited(awaitable):
    return await awaitable


def _reconnect():
    try:
        connection.close()
    except Exception:
        log.debug("closing a broken connection failed", exc_info=True)
