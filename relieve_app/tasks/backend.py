"""RelieveBackend: Django's ``django.tasks`` served by the relieve master's supervised children.

``enqueue()`` inserts a ``TaskRecord`` in the caller's transaction and, once that commits, the
master hears of it without the request waiting for it: on PostgreSQL the INSERT itself NOTIFYs
every master (``notifying.py``); elsewhere the tasks of one transaction are written to the master's
Unix socket over one connection, and no answer is awaited (at most RELIEVE_ACK_TIMEOUT to connect
and write).
With the master down, or a frame it did not take, the row simply waits for its sweep.
Arguments must be JSON that both databases and the socket carry (``arguments.py``): anything else
fails here, at ``enqueue()``, never later in a child. Results are read back from the table, which
only the master writes after the insert.
"""

import importlib
import math
import sys
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.tasks import Task, TaskResult, TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import TaskError
from django.tasks.exceptions import InvalidTask, InvalidTaskBackend, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued
from django.utils.module_loading import import_string

from relieve_app.models import TaskRecord
from relieve_app.tasks import arguments, backpressure, client, commit_batch, retry, rows, unique
from relieve_app.tasks.rates import parse_rate


@dataclass(frozen=True, slots=True, kw_only=True)
class RelieveTask(Task):
    """A Django Task that may set its own limits: ``@task(timeout=30, max_attempts=3)``.

    ``timeout`` (seconds) kills a child that runs one attempt longer; ``max_attempts`` bounds the
    runs of a task whose child dies, hangs or asks to retry later. None: the master's defaults.
    ``retry_on`` lists exceptions (classes or dotted paths, subclasses included) after which an
    attempt runs again, ``retry_delay`` seconds (RELIEVE_RETRY_DELAY) later at most, doubling
    (see ``tasks/retry.py``).
    ``unique``: a call waiting with the same arguments is returned instead of a new one
    (``tasks/unique.py``); ``concurrency``: at most that many attempts at once, and ``rate``
    ("10/m"): at most that many starts in any window of that length, across every master
    (``tasks/limits.py``).
    """

    timeout: float | None = None
    max_attempts: int | None = None
    retry_on: tuple = ()
    retry_delay: float | None = None
    unique: bool = False
    concurrency: int | None = None
    rate: str | None = None


class RelieveBackend(BaseTaskBackend):
    task_class = RelieveTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def validate_task(self, task):
        super().validate_task(task)
        timeout = getattr(task, "timeout", None)
        if timeout is not None and not (isinstance(timeout, int | float) and 0 < timeout < math.inf):
            raise InvalidTask(f"timeout must be a positive number of seconds, got {timeout!r}")
        attempts = getattr(task, "max_attempts", None)
        if attempts is not None and not (isinstance(attempts, int) and 1 <= attempts <= 1000):
            raise InvalidTask(f"max_attempts must be a whole number from 1 to 1000, got {attempts!r}")
        delay = getattr(task, "retry_delay", None)
        if delay is not None and (
            isinstance(delay, bool) or not isinstance(delay, int | float) or not 0 <= delay < math.inf
        ):
            raise InvalidTask(f"retry_delay must be a number of seconds, 0 or more, got {delay!r}")
        try:
            retry.exception_classes(getattr(task, "retry_on", ()))
        except ValueError as exc:
            raise InvalidTask(f"retry_on: {exc}") from None
        check_flow(task)

    def enqueue(self, task, args, kwargs):
        self.validate_task(task)
        args, kwargs = arguments.check(task, list(args), dict(kwargs))
        fields = {
            "task_path": task.module_path,
            "queue_name": task.queue_name,
            "backend": self.alias,
            "priority": task.priority,
            "takes_context": task.takes_context,
            "run_after": task.run_after,
            "timeout": getattr(task, "timeout", None),
            "max_attempts": getattr(task, "max_attempts", None),
            "concurrency": getattr(task, "concurrency", None),
            "rate": getattr(task, "rate", None) or "",
            "args": args,
            "kwargs": kwargs,
        }
        if getattr(task, "unique", False):
            key = unique.key(task.module_path, args, kwargs)
            waiting = unique.waiting(key)
            if waiting is not None:
                return to_result(waiting, task)
            backpressure.check(task.queue_name)
            row, created = unique.insert(key, fields)
            if not created:
                return to_result(row, task)
        else:
            backpressure.check(task.queue_name)  # QueueFull before any row is written
            # One INSERT: atomic on its own, and part of the caller's transaction when there is one.
            row = rows.create(**fields)
        Handover.on_commit(row)
        result = to_result(row, task)
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id):
        try:
            row = TaskRecord.objects.get(pk=int(result_id))
        except (TypeError, ValueError, OverflowError, TaskRecord.DoesNotExist):
            raise TaskResultDoesNotExist(result_id) from None
        return to_result(row)


def check_flow(task):
    """InvalidTask for a ``unique``, ``concurrency`` or ``rate`` that cannot be obeyed."""
    if not isinstance(getattr(task, "unique", False), bool):
        raise InvalidTask(f"unique must be True or False, got {task.unique!r}")
    cap = getattr(task, "concurrency", None)
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or not 1 <= cap <= 100_000):
        raise InvalidTask(f"concurrency must be a whole number of at least 1, got {cap!r}")
    rate = getattr(task, "rate", None)
    if rate is not None:
        try:
            if parse_rate(rate, setting="rate") is None:
                raise ImproperlyConfigured(f"rate = {rate!r} is empty: leave it out for no limit")
        except ImproperlyConfigured as exc:
            raise InvalidTask(f"{task.module_path}: {exc}") from None


def again(row):
    """A new READY row for the same task and arguments: how a finished task is run once more.

    The old row stays as the record of what happened; the caller announces the new one on commit.
    """
    fields = [
        "task_path",
        "queue_name",
        "backend",
        "priority",
        "takes_context",
        "timeout",
        "max_attempts",
        "concurrency",
        "rate",
    ]
    return TaskRecord.objects.create(
        **{name: getattr(row, name) for name in fields}, args=row.args, kwargs=row.kwargs
    )


def hints(row):
    """What the master orders a task by, so it need not read the row; defaults are left out."""
    found = {}
    if row.queue_name != "default":
        found["queue"] = row.queue_name
    if row.priority:
        found["priority"] = row.priority
    if row.run_after is not None:
        found["run_after"] = row.run_after.timestamp()
    return found


class Handover:
    """Tasks enqueued one after another in a transaction, handed to the master once it commits.

    Consecutive enqueues at the same savepoint level share one commit callback, and so one
    connection to the master: a burst of thousands costs one round trip, not thousands. What a
    rolled-back savepoint enqueued goes with its callback; nothing of it is sent.
    """

    def __init__(self, row):
        self.tasks = [(row.pk, hints(row))]

    def __call__(self):
        client.announce(self.tasks)

    @classmethod
    def on_commit(cls, row):
        """On commit of the transaction that wrote ``row``, on the database it was written to."""
        using = row._state.db or DEFAULT_DB_ALIAS
        written = connections[using]
        if written.vendor == "postgresql":
            return  # its INSERT told every master, delivered on commit (notifying.py): no socket needed
        last = commit_batch.pending(written, cls)
        if last is not None:
            last.tasks.append((row.pk, hints(row)))
            return
        transaction.on_commit(cls(row), using=using)


def to_result(row, task=None):
    """Django's TaskResult for a row; the Task is rebuilt from its path when not given."""
    if task is None:
        task = load_task(row)
    result = TaskResult(
        task=task,
        id=str(row.pk),
        status=TaskResultStatus(row.status),
        enqueued_at=row.enqueued_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        last_attempted_at=row.last_attempted_at,
        args=row.args,
        kwargs=row.kwargs,
        backend=row.backend,
        errors=[
            TaskError(
                exception_class_path=e.get("exception_class_path", ""), traceback=e.get("traceback", "")
            )
            for e in row.errors
        ],
        worker_ids=list(row.worker_ids),
    )
    object.__setattr__(result, "_return_value", row.return_value)
    return result


def load_task(row, fresh=False):
    """The Task a row names, with the row's own priority, queue and run_after.

    A row outlives code: when its task no longer imports, or its queue left the settings, the
    result still reads, with a stand-in function that says so when called. ``fresh`` (the master,
    whose children load code anew at each reload while it keeps what it imported) imports the
    task's module again when the task is not found: a task added to it since is then found, not
    stood in for. The module then runs twice in the master: its signal receivers need a
    ``dispatch_uid`` to stay connected once.
    """
    try:
        task = import_string(row.task_path)
        if isinstance(task, Task):
            if (task.priority, task.queue_name, task.run_after) == (
                row.priority,
                row.queue_name,
                row.run_after,
            ):
                return task  # the common case, and the master's: no copy to build and validate
            return task.using(priority=row.priority, queue_name=row.queue_name, run_after=row.run_after)
    except ImportError:
        if fresh and _import_again(row.task_path):
            return load_task(row)
    except (InvalidTask, InvalidTaskBackend):
        pass
    return _Unloadable(func=_missing, backend=row.backend, queue_name=row.queue_name, priority=row.priority)


def _import_again(path):
    """Import the module of ``path`` afresh (changed or new since this process looked); whether it
    imports now."""
    importlib.invalidate_caches()
    module = sys.modules.get(path.rpartition(".")[0])
    try:
        if module is not None:
            importlib.reload(module)
        else:
            importlib.import_module(path.rpartition(".")[0])
    except Exception:
        return False
    return True


@dataclass(frozen=True, slots=True, kw_only=True)
class _Unloadable(Task):
    def __post_init__(self):
        pass  # nothing to validate: it only describes a stored row


def _missing(*args, **kwargs):
    """Stands for a task whose module can no longer be imported here."""
    raise ImportError("this task can no longer be imported")
