"""The master's writes of task state: operations run on the recorder's thread, in its transactions.

Every change of a ``TaskRecord`` after its insert is made here, and a contact message's
``MailOutcome`` is written in the same operation as the task that delivers it, so the two can
never tell different stories. Signals ``task_started`` and ``task_finished`` are sent once the
write they announce is committed.

Claims, leases and takeovers, shared by several masters, are in ``claims.py``; an outcome is
recorded only by the master that still owns the row.
"""

import logging
from datetime import timedelta
from functools import partial

from django.db import transaction
from django.tasks.signals import task_finished
from django.utils import timezone

from .models import MailOutcome, TaskEvent, TaskRecord

log = logging.getLogger(__name__)

Status = TaskRecord.Status
MAIL_TASK = "relieve_app.mailtask.send_contact_mail"


def job(row):
    """All a child needs to run one attempt, as JSON."""
    return {
        "id": row.pk,
        "path": row.task_path,
        "args": row.args,
        "kwargs": row.kwargs,
        "takes_context": row.takes_context,
        "backend": row.backend,
        "worker_ids": row.worker_ids,
        "attempt": len(row.worker_ids),
        "timeout": row.timeout,
        "max_attempts": row.max_attempts,
        "enqueued_at": row.enqueued_at.isoformat(),
        "started_at": row.started_at.isoformat() if row.started_at else None,
        "last_attempted_at": row.last_attempted_at.isoformat() if row.last_attempted_at else None,
    }


def succeed(task_id, worker_id, value, owner=None):
    now = timezone.now()
    row = _running(task_id, owner)
    if row is None:
        return
    row.status, row.return_value, row.finished_at = Status.SUCCESSFUL, value, now
    row.owner, row.lease_until, row.updated_at = "", None, now
    row.save(update_fields=["status", "return_value", "finished_at", "owner", "lease_until", "updated_at"])
    message = f"done by {worker_id}"
    if row.task_path == MAIL_TASK:
        message = value.get("message", message) if isinstance(value, dict) else message
        _mirror(row, now, status=MailOutcome.Status.SENT, message=message, error="", sent_at=now)
    _event(row, worker_id, "info", {"attempt": row.attempts, "message": message}, now)
    _announce(task_finished, row)


def fail(task_id, worker_id, error, event="error", retry_in=None, owner=None):
    """An attempt failed: READY again after ``retry_in`` seconds, or FAILED when that is None."""
    now = timezone.now()
    row = _running(task_id, owner)
    if row is None:
        return
    row.errors = [*row.errors, error]
    row.owner, row.lease_until, row.updated_at = "", None, now
    fields = ["errors", "status", "owner", "lease_until", "updated_at"]
    if retry_in is None:
        row.status, row.finished_at = Status.FAILED, now
        fields.append("finished_at")
    else:
        row.status, row.run_after = Status.READY, now + timedelta(seconds=retry_in)
        fields.append("run_after")
    row.save(update_fields=fields)
    if row.task_path == MAIL_TASK:
        state = MailOutcome.Status.FAILED if retry_in is None else MailOutcome.Status.RETRYING
        _mirror(row, now, status=state, error=error.get("message", ""))
    payload = {
        "attempt": row.attempts,
        "message": error.get("message", ""),
        "exception": error.get("exception_class_path", ""),
        "retry_in": retry_in,
    }
    _event(row, worker_id, event, payload, now)
    if retry_in is None:
        _announce(task_finished, row)


def check_schema():
    TaskRecord.objects.exists()


def _running(task_id, owner=None):
    """The row, if it still runs here: once another master took it over, its result is that one's."""
    rows = TaskRecord.objects.filter(pk=task_id, status=Status.RUNNING)
    row = (rows if owner is None else rows.filter(owner=owner)).first()
    if row is None:
        log.warning("task %s is no longer running here; its outcome is not recorded", task_id)
    return row


def _mirror(row, now, **fields):
    """The contact message's delivery state, in the same transaction as its task's."""
    MailOutcome.objects.filter(task_result=row.pk).update(attempts=row.attempts, updated_at=now, **fields)


def _event(row, worker_id, event, payload, now):
    outcome = None
    if row.task_path == MAIL_TASK:
        outcome = MailOutcome.objects.filter(task_result=row.pk).values_list("pk", flat=True).first()
    if outcome is not None:
        payload = {**payload, "id": outcome}
    TaskEvent.objects.create(
        task_name=worker_id,
        event=event,
        payload={"task": row.pk, **payload},
        task_result=row,
        outcome_id=outcome,
        created_at=now,
    )


def _announce(signal, row):
    """Send the signal once the write is committed; a failing receiver is logged, never replayed."""
    transaction.on_commit(partial(_send, signal, row), robust=True)


def _send(signal, row):
    from .backend import to_result

    signal.send(sender=_backend_class(), task_result=to_result(row))


def _backend_class():
    from .backend import RelieveBackend

    return RelieveBackend
