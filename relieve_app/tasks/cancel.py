"""Cancelling a task: a waiting one never starts, a running one has its child stopped.

A READY row ends FAILED here, at once. A RUNNING row gets ``cancel_requested_at``; the master that
owns it, on whichever host, looks for such rows every ``CONTROL_INTERVAL`` seconds, kills the
child's whole process group, lets the pool replace it, and ends the row FAILED. Either way the
row's last error is a ``relieve_app.control.TaskCancelled`` and ``task_finished`` is sent.
"""

from asgiref.sync import sync_to_async
from django.db import transaction
from django.tasks.exceptions import TaskResultDoesNotExist
from django.tasks.signals import task_finished
from django.utils import timezone

from relieve_app.models import TaskEvent, TaskRecord
from relieve_app.tasks import hooks

CONTROL_INTERVAL = 0.5  # how often a master reads cancel requests and paused queues
Status = TaskRecord.Status


class TaskCancelled(Exception):
    """Recorded as the error of a task that was cancelled before or while it ran."""

    __module__ = "relieve_app.control"  # the public path: errors record it, and people import it, from there


TASK_CANCELLED = f"{TaskCancelled.__module__}.{TaskCancelled.__qualname__}"


def cancelled_error(message):
    return {"exception_class_path": TASK_CANCELLED, "message": message, "traceback": ""}


def cancel(result_id):
    """Cancel a task result by id: True when it was waiting or running, False when it had finished.

    Raises TaskResultDoesNotExist for an id that names no task result.
    """
    try:
        pk = int(result_id)
    except (TypeError, ValueError, OverflowError):
        raise TaskResultDoesNotExist(result_id) from None
    for _try in range(5):  # the master may move the row between the read and the write
        status = TaskRecord.objects.filter(pk=pk).values_list("status", flat=True).first()
        if status is None:
            raise TaskResultDoesNotExist(result_id)
        if status in TaskRecord.FINISHED:
            return False
        if status == Status.READY and _fail_waiting(pk):
            return True
        if status == Status.RUNNING:
            now = timezone.now()
            if TaskRecord.objects.filter(pk=pk, status=Status.RUNNING).update(cancel_requested_at=now):
                return True
    return False


async def acancel(result_id):
    return await sync_to_async(cancel)(result_id)


def _fail_waiting(pk):
    """READY -> FAILED with the cancel's error, only while still READY; True when it was."""
    now = timezone.now()
    with transaction.atomic():
        row = TaskRecord.objects.select_for_update().filter(pk=pk, status=Status.READY).first()
        if row is None:
            return False
        error = cancelled_error("cancelled before it started")
        changed = TaskRecord.objects.filter(pk=pk, status=Status.READY).update(
            status=Status.FAILED,
            errors=[*row.errors, error],
            finished_at=now,
            updated_at=now,
            cancel_requested_at=now,
        )
        if not changed:
            return False
        row.refresh_from_db()
        # An app following this task (hooks.py) writes its own row in this transaction, as it
        # does for the master's changes; its after_commit side effects are the master's alone.
        event = {"event": "cancel", "payload": {"message": error["message"]}}
        change = hooks.Change(row, hooks.FAILED, now, error=error, event=event)
        if hooks.followed(row.task_path):
            hooks.run_in_transaction([change])
        fields = dict(change.event)
        payload = {"task": pk, **fields.pop("payload")}
        TaskEvent.objects.create(task_result=row, payload=payload, created_at=now, **fields)
        transaction.on_commit(lambda: _finished(row), robust=True)
    return True


def _finished(row):
    from relieve_app.tasks.backend import RelieveBackend, to_result

    task_finished.send(sender=RelieveBackend, task_result=to_result(row))
