"""``@task(unique=True)``: one waiting call per task and arguments, however many processes enqueue it.

The key is a hash of the task's path, arguments and keyword arguments. A partial unique index
(``unique_waiting_task``: READY rows never started) makes the database the judge: an insert that
finds its key taken raises IntegrityError inside its own savepoint, and the row that holds the key
is returned instead. Once a task has started it leaves the index, so a new call makes a new row.
"""

import hashlib
import json

from django.db import IntegrityError, transaction

from relieve_app.models import TaskRecord
from relieve_app.tasks import rows

TRIES = 5  # a key freed between the failed insert and the read: insert again


def key(task_path, args, kwargs):
    """The same for the same call, whatever the order of its keyword arguments."""
    text = json.dumps([task_path, args, kwargs], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def waiting(unique_key):
    """The READY, never started row that holds ``unique_key``, or None."""
    return TaskRecord.objects.filter(
        unique_key=unique_key, status=TaskRecord.Status.READY, started_at=None
    ).first()


def insert(unique_key, fields):
    """``(row, created)``: a new row, or the waiting one that already holds the key."""
    for _try in range(TRIES):
        try:
            with transaction.atomic():
                return rows.create(**fields, unique_key=unique_key), True
        except IntegrityError:
            found = waiting(unique_key)
            if found is not None:
                return found, False
    raise IntegrityError(f"no row could be inserted nor found for the unique key {unique_key}")
