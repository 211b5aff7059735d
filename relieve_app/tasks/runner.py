"""What each child of the master runs: any ``django.tasks`` task, by the path stored in its row.

The master claims a row and calls ``run(job)``; the job carries all a task needs (path, args,
kwargs, the attempt so far), and the answer is a plain dict, never a raise, so the master knows
how the attempt ended::

    {"ok": true, "value": <JSON>}
    {"ok": false, "error": {"exception_class_path", "message", "traceback"}, "retry": bool, "delay": s}

A task that cannot be imported, raises (``SystemExit`` and exceptions that cannot be printed
too), or returns something that is not JSON fails on its own; the child goes on serving.
``RetryLater``, or an exception the task lists in ``retry_on``, asks for another attempt later
(the master ends the task FAILED once its attempts are spent).

Should the master go while a task runs (stopped to be restarted, or killed), ``orphaned()`` lets
the child finish it and record its end itself (``failsafe.py``). A master killed before it read the
child's last answers loses them with it: ``parent_gone()`` records those the master had not.
"""

import json
import os
import threading
import time
import traceback
from collections import deque
from datetime import datetime

from relieve_app.tasks.retry import RetryLater, backoff, exception_classes

# Answers kept for a master that may go before reading them: more than a child can give unread,
# the one it runs and those its master claimed ahead for it (``master/lanes.py``'s MAX_AHEAD, 4).
UNHEARD = 8


def setup_django():
    """A child starts as a bare interpreter: load the project's settings before its first job.

    The settings are the master's own: ``manage.py`` names them in DJANGO_SETTINGS_MODULE, which a
    child inherits. A child started any other way must be given it; it guesses no project's.
    """
    import django
    from django.apps import apps
    from django.core.exceptions import ImproperlyConfigured

    if apps.ready:
        return
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        raise ImproperlyConfigured(
            "DJANGO_SETTINGS_MODULE is not set: a relieve child loads the project's settings by it. "
            "Start children with `python manage.py runrelieve`, or set it to your settings module."
        )
    django.setup()


def close_connections():
    """The last of the master's zygote's preloads, after Django's setup and the task's module, either
    of which may have connected: a connection must not be shared by the processes forked from it."""
    from django.apps import apps

    if not apps.ready:  # Django's setup failed and is reported already: nothing connected
        return
    from django.db import connections

    connections.close_all()


class TaskNotFound(ImportError):
    """The path of a stored task does not lead to a task here."""


class Runner:
    """Runs one task at a time (the container's lane thread), Django set up once per child."""

    def __init__(self):
        setup_django()
        self._lock = threading.Lock()
        self._job = None  # the job the lane thread runs now
        self._started = None  # when it started, by time.monotonic()
        self._detached = None  # failsafe.Detached: that job's master went, this child holds its row
        self._answered = deque(maxlen=UNHEARD)  # (job, answer) of the last attempts, for parent_gone()

    def parent_gone(self):
        """The channel to the master closed (``pool/container.py``): the answers it may not have
        read are recorded here, where the row still says it waits for them (``failsafe.py``)."""
        from relieve_app.tasks.failsafe import record_unheard

        with self._lock:
            answered = list(self._answered)
            self._answered.clear()
        if answered:
            record_unheard(answered)

    def orphaned(self):
        """The master went during a task (``pool/container.py``): keep running it, if its row could
        be taken over; else (another master took it back, or no task runs) the child ends now."""
        from relieve_app.tasks.failsafe import Detached

        with self._lock:
            if self._job is not None and self._detached is None:
                self._detached = Detached.take_over(self._job, self._started)
            return self._detached is not None

    def run(self, job):
        with self._lock:
            self._job, self._started = job, time.monotonic()
        try:
            answer = self._run(job)
        finally:
            with self._lock:
                self._job, detached, self._detached = None, self._detached, None
        if detached is not None:
            detached.finish(answer)
        else:
            with self._lock:
                self._answered.append((job, answer))
        return answer

    def _run(self, job):
        from django.db import close_old_connections

        from relieve_app.tasks import progress

        close_old_connections()
        task = None
        try:
            task = load(job["path"])
            with progress.reporting(job["id"]):  # relieve_app.control.report_progress writes for this task
                value = call(task, job)
        except RetryLater as exc:
            return failure(exc, retry=True, delay=exc.delay)
        except (Exception, SystemExit) as exc:  # sys.exit() in a task ends the attempt, not the child
            if task is not None and retried(task, exc):
                return failure(exc, retry=True, delay=retry_delay(task, job))
            return failure(exc)
        finally:
            close_old_connections()
        return {"ok": True, "value": value}


def load(path):
    from django.tasks import Task
    from django.utils.module_loading import import_string

    try:
        task = import_string(path)
    except Exception as exc:
        raise TaskNotFound(f"the task {path} cannot be imported: {type(exc).__name__}: {exc}") from exc
    if not isinstance(task, Task):
        raise TaskNotFound(f"{path} is not a task: decorate it with @task")
    return task


def retried(task, exc):
    """Whether the task's ``retry_on`` names this exception, or one of its bases."""
    retry_on = getattr(task, "retry_on", ())
    return bool(retry_on) and isinstance(exc, exception_classes(retry_on))


def retry_delay(task, job):
    from relieve_app.conf import app_settings

    base = getattr(task, "retry_delay", None)
    base = app_settings.RELIEVE_RETRY_DELAY if base is None else base
    return backoff(job.get("attempt", 1), base, app_settings.RELIEVE_MAX_RETRY_DELAY)


def call(task, job):
    from django.utils.json import normalize_json

    args, kwargs = job.get("args", []), job.get("kwargs", {})
    if job.get("takes_context"):
        args = [context(task, job), *args]
    value = task.call(*args, **kwargs)
    try:
        value = normalize_json(value)
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{task.module_path} returned a value that is not JSON: {exc}") from None
    return value


def context(task, job):
    from django.tasks import TaskContext, TaskResult, TaskResultStatus

    result = TaskResult(
        task=task,
        id=str(job["id"]),
        status=TaskResultStatus.RUNNING,
        enqueued_at=_time(job.get("enqueued_at")),
        started_at=_time(job.get("started_at")),
        last_attempted_at=_time(job.get("last_attempted_at")),
        finished_at=None,
        args=job.get("args", []),
        kwargs=job.get("kwargs", {}),
        backend=job.get("backend", task.backend),
        errors=[],
        worker_ids=list(job.get("worker_ids", [])),
    )
    return TaskContext(task_result=result)


def failure(exc, retry=False, delay=None):
    kind = type(exc)
    return {
        "ok": False,
        "error": {
            "exception_class_path": f"{kind.__module__}.{kind.__qualname__}",
            "message": message(exc),
            "traceback": "".join(traceback.format_exception(exc)),
        },
        "retry": retry,
        "delay": delay,
    }


def message(exc):
    """What ``exc`` says; an exception whose ``__str__`` raises is still recorded as itself."""
    if isinstance(exc, SystemExit):
        return f"the task called sys.exit({exc.code!r})"
    try:
        return str(exc) or type(exc).__name__
    except Exception as broken:
        return f"<{type(exc).__name__} whose str() raised {type(broken).__name__}>"


def _time(text):
    return datetime.fromisoformat(text) if text else None
