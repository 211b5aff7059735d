"""How far a running task is: ``report_progress`` inside it, ``progress`` from anywhere.

The child that runs a task knows its id (the runner sets it around each call), so a task only
says how far it is. Writes go straight to ``TaskProgress``, one row per task, at most one a
second (THROTTLE); a value held back is written when its second is up, or when the task ends, so
the last value is always kept. A write that fails is logged and never fails the task.
"""

import asyncio
import contextlib
import logging
import math
import threading
import time

from django.db import DatabaseError, connection
from django.utils import timezone

from relieve_app.models import TaskProgress

log = logging.getLogger(__name__)

THROTTLE = 1.0  # seconds between two writes of one task's progress
NOTE_LENGTH = 200


class _Reporter:
    """One task's reports: the first written at once, the next held until THROTTLE has passed.

    A held value is written by a timer when its second is up, so a task that reports a step and
    then works quietly still shows that step; at the task's end whatever is held is written.
    """

    def __init__(self, task_id):
        self.task_id = task_id
        self.written_at = None
        self.pending = None
        self.timer = None
        self.lock = threading.Lock()

    def report(self, value):
        with self.lock:
            self.pending = value
            wait = 0 if self.written_at is None else THROTTLE - (time.monotonic() - self.written_at)
            if wait > 0:
                if self.timer is None:
                    self.timer = threading.Timer(wait, self._on_time)
                    self.timer.daemon = True
                    self.timer.start()
                return
            value = self._take()
        self._write(value, in_loop=_in_event_loop())

    def close(self):
        """The task ended: stop the timer and write what it held."""
        with self.lock:
            if self.timer is not None:
                self.timer.cancel()
            value = self._take()
        self._write(value, in_loop=_in_event_loop())

    def _on_time(self):
        with self.lock:
            value = self._take()
        if value is not None:
            _write_closing(self.task_id, value)

    def _take(self):
        value, self.pending, self.timer = self.pending, None, None
        if value is not None:
            self.written_at = time.monotonic()
        return value

    def _write(self, value, in_loop):
        if value is None:
            return
        if in_loop:  # an async task: the ORM may not be called from the loop's thread
            writer = threading.Thread(target=_write_closing, args=(self.task_id, value))
            writer.start()
            writer.join()
        else:
            _write(self.task_id, value)


_current = None  # the _Reporter of the task this child runs now


@contextlib.contextmanager
def reporting(task_id):
    """Around one attempt in a child: report_progress writes for ``task_id``; the last value is kept."""
    global _current
    _current = _Reporter(task_id)
    try:
        yield
    finally:
        reporter, _current = _current, None
        reporter.close()


def report_progress(done, total=None, note=""):
    """Say how far the running task is: ``done`` of ``total`` (None: unknown), with a short note.

    Returns True when it is recorded (now or within the second), False outside a task run by a
    relieve child (a test calling the function directly, the immediate backend).
    """
    if not _number(done) or done < 0:
        raise ValueError(f"done must be a finite number of at least 0, got {done!r:.50}")
    if total is not None and (not _number(total) or total <= 0):
        raise ValueError(f"total must be a positive finite number or None, got {total!r:.50}")
    if _current is None:
        return False
    _current.report(
        {"done": float(done), "total": None if total is None else float(total), "note": str(note)}
    )
    return True


def progress(result_id):
    """``{"done", "total", "note", "at"}`` as last reported for the task, or None."""
    try:
        pk = int(result_id)
    except (TypeError, ValueError):
        return None
    row = TaskProgress.objects.filter(task_result_id=pk).first()
    if row is None:
        return None
    return {"done": row.done, "total": row.total, "note": row.note, "at": row.at}


def of_many(ids):
    """``{task id: progress}`` for many tasks in one query: the pool page's running tasks."""
    rows = TaskProgress.objects.filter(task_result_id__in=list(ids))
    return {
        row.task_result_id: {"done": row.done, "total": row.total, "note": row.note, "at": row.at}
        for row in rows
    }


def _write(task_id, value):
    try:
        TaskProgress.objects.update_or_create(
            task_result_id=task_id,
            defaults={**value, "note": value["note"][:NOTE_LENGTH], "at": timezone.now()},
        )
    except DatabaseError as exc:
        log.warning("the progress of task %s could not be recorded: %s", task_id, exc)


def _write_closing(task_id, value):
    try:
        _write(task_id, value)
    finally:
        connection.close()


def _in_event_loop():
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _number(value):
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
