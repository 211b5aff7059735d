"""The master's only door to the database: one thread, operations batched into transactions.

The event loop never blocks on the database. Each operation is a plain function run on
the recorder's thread; whatever is waiting when the thread wakes runs in one transaction,
so a burst of events costs one commit. A batch that fails is replayed one operation at a
time, so one bad row cannot take the others with it.
"""

import asyncio
import logging
import queue
import threading
import time
from concurrent.futures import Future
from datetime import timedelta

from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from .models import MailOutcome, TaskEvent

log = logging.getLogger(__name__)

MAX_BATCH = 200
Status = MailOutcome.Status


class Recorder:
    def __init__(self):
        self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="relieve-recorder", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def submit(self, fn, *args):
        """Run ``fn(*args)`` on the recorder thread; returns an awaitable of its result."""
        future = Future()
        self._queue.put((fn, args, future))
        return asyncio.wrap_future(future)

    def record(self, fn, *args):
        """Like submit, for writes nobody waits on: a failure is logged, not raised."""
        future = Future()
        future.add_done_callback(_log_failure)
        self._queue.put((fn, args, future))

    async def stop(self):
        """Finish what is queued, then end the thread."""
        done = Future()
        self._queue.put((None, (), done))
        await asyncio.wrap_future(done)

    def _serve(self):
        try:
            while True:
                batch = [self._queue.get()]
                while len(batch) < MAX_BATCH:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = [item for item in batch if item[0] is None]
                # A waiter that was cancelled (the master stopping) no longer wants its operation.
                work = [
                    item for item in batch if item[0] is not None and item[2].set_running_or_notify_cancel()
                ]
                if work:
                    self._run(work)
                if stop:
                    for _fn, _args, future in stop:
                        future.set_result(None)
                    return
        finally:
            connection.close()

    def _run(self, batch):
        close_old_connections()
        results = []
        try:
            with transaction.atomic():
                results = [fn(*args) for fn, args, _future in batch]
        except Exception as exc:
            log.warning(
                "a batch of %d database writes failed (%s); replaying them one by one", len(batch), exc
            )
            for fn, args, future in batch:
                _run_one(fn, args, future)
            return
        for (_fn, _args, future), result in zip(batch, results, strict=True):
            future.set_result(result)


def _run_one(fn, args, future, attempts=3):
    for attempt in range(attempts):
        try:
            with transaction.atomic():
                result = fn(*args)
        except Exception as exc:
            if attempt + 1 == attempts:
                future.set_exception(exc)
                return
            time.sleep(0.2 * (attempt + 1))
        else:
            future.set_result(result)
            return


def _log_failure(future):
    if future.exception() is not None:
        log.error("recording to the database failed", exc_info=future.exception())


# Operations: each runs on the recorder thread inside a transaction. --------------------------


def claim(outcome_id):
    """Mark a pending outcome `sending` and return the job a child needs, or None if not pending."""
    row = MailOutcome.objects.filter(pk=outcome_id, status__in=MailOutcome.PENDING).first()
    if row is None:
        return None
    row.attempts += 1
    row.status = Status.SENDING
    row.save(update_fields=["attempts", "status", "updated_at"])
    return {
        "id": row.pk,
        "emitter": row.emitter,
        "recipient": row.recipient,
        "subject": row.subject,
        "body": row.body,
        "attempt": row.attempts,
    }


def set_task(outcome_id, task_name):
    MailOutcome.objects.filter(pk=outcome_id).update(task_name=task_name, updated_at=timezone.now())


def mark_sent(outcome_id, message):
    MailOutcome.objects.filter(pk=outcome_id).update(
        status=Status.SENT, message=message, error="", sent_at=timezone.now(), updated_at=timezone.now()
    )


def mark_error(outcome_id, error, final):
    """The attempt failed: `failed` when no attempts are left, else `retrying`."""
    MailOutcome.objects.filter(pk=outcome_id).exclude(status=Status.SENT).update(
        status=Status.FAILED if final else Status.RETRYING, error=error, updated_at=timezone.now()
    )


def add_event(task_name, event, payload, outcome_id=None, at=None):
    if outcome_id is not None and not MailOutcome.objects.filter(pk=outcome_id).exists():
        outcome_id = None
    TaskEvent.objects.create(
        task_name=task_name,
        event=event,
        payload=payload,
        outcome_id=outcome_id,
        created_at=at or timezone.now(),
    )


def pending(exclude=(), stale_after=0.0):
    """Pending outcomes not already handled: (id, status, attempts, seconds since last update)."""
    now = timezone.now()
    rows = (
        MailOutcome.objects.pending()
        .exclude(pk__in=list(exclude))
        .filter(updated_at__lte=now - timedelta(seconds=stale_after))
        .order_by("created_at")
        .values_list("pk", "status", "attempts", "updated_at")
    )
    return [(pk, status, attempts, (now - updated).total_seconds()) for pk, status, attempts, updated in rows]


def check_schema():
    """Raises when the tables are missing, so the master can say `migrate` before doing anything."""
    MailOutcome.objects.exists()
