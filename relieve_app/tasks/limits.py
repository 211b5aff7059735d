"""``@task(concurrency=N)`` and ``@task(rate="10/m")``: limits that hold across every master.

Both are judged at the claim, in the claim's transaction, from the database alone: a cap counts
the task's RUNNING rows, a rate the starts logged in ``TaskStart`` over the last period (an exact
sliding log: never more than the count in any window of that length, and no burst beyond it). On
PostgreSQL the claims of one limited task are serialised by a transaction-level advisory lock per
task, so two masters never both take the last place; SQLite has one master per file and takes its
write lock at BEGIN.

A held task stays READY and is asked for again later (``{"later": seconds}`` to the master): at
the moment its rate frees a start; for a cap, as soon as an attempt of the task ends on the same
master (``tasks/master/holding.py``), else after CAP_RECHECK seconds (one ended on another
master). Its child goes on to the next task of the queue meanwhile.
"""

import hashlib
from datetime import timedelta
from functools import cache

from django.db import connection

from relieve_app.models import TaskRecord, TaskStart
from relieve_app.tasks.rates import parse_rate

CAP_RECHECK = 1.0  # seconds before a task held by its cap is asked for again


@cache
def rate_of(text):
    return parse_rate(text, setting="rate") if text else None


def limited(row):
    return bool(row.concurrency or row.rate)


class Gate:
    """The limits of one group of claims: ``hold(row)`` answers for each row about to be claimed."""

    def __init__(self, now):
        self.now = now
        self.running = {}  # task path -> its attempts running, counting those admitted here
        self.starts = {}  # task path -> its starts in the window, oldest first
        self.started = []  # the starts admitted here, logged by record()

    def lock(self, rows):
        """Serialise, across masters, the claims of the limited tasks among ``rows`` (PostgreSQL)."""
        paths = sorted({row.task_path for row in rows if limited(row)})
        if connection.vendor != "postgresql" or not paths:
            return
        with connection.cursor() as cursor:
            for path in paths:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key(path)])

    def hold(self, row):
        """The claim's answer for a row held back, ``{"later": seconds, "held": "concurrency" or
        "rate", "path": ...}``, or None: then it is admitted and counted."""
        path = row.task_path
        if row.concurrency:
            if path not in self.running:
                self.running[path] = running(path)
            if self.running[path] >= row.concurrency:
                return {"later": CAP_RECHECK, "held": "concurrency", "path": path}
        rate = rate_of(row.rate)
        if rate is not None:
            if path not in self.starts:
                self.starts[path] = starts(path, rate, self.now)
            window = self.starts[path]
            if len(window) >= rate.limit:
                wait = (window[-rate.limit] + timedelta(seconds=rate.period) - self.now).total_seconds()
                return {"later": max(wait, 0.01), "held": "rate", "path": path}
            window.append(self.now)
            self.started.append((path, rate))
        if row.concurrency:
            self.running[path] += 1
        return None

    def record(self):
        """Log the starts admitted, and forget those no window can count any more."""
        if not self.started:
            return
        TaskStart.objects.bulk_create(TaskStart(task_path=path, at=self.now) for path, _rate in self.started)
        for path, rate in set(self.started):
            TaskStart.objects.filter(
                task_path=path, at__lte=self.now - timedelta(seconds=rate.period)
            ).delete()


def running(path):
    return TaskRecord.objects.filter(task_path=path, status=TaskRecord.Status.RUNNING).count()


def starts(path, rate, now):
    since = now - timedelta(seconds=rate.period)
    return list(
        TaskStart.objects.filter(task_path=path, at__gt=since).order_by("at").values_list("at", flat=True)
    )


def holding(row, now):
    """What holds ``row`` back now, for "why is it waiting?": ``(kind, detail)`` or None.

    ``("concurrency", (running, cap))`` or ``("rate", (rate, until))``; read only, no lock.
    """
    if row.concurrency:
        count = running(row.task_path)
        if count >= row.concurrency:
            return "concurrency", (count, row.concurrency)
    rate = rate_of(row.rate)
    if rate is not None:
        window = starts(row.task_path, rate, now)
        if len(window) >= rate.limit:
            return "rate", (rate, window[-rate.limit] + timedelta(seconds=rate.period))
    return None


def lock_key(path):
    """A signed 64-bit number for the task's advisory lock, the same in every process."""
    return int.from_bytes(hashlib.sha256(f"relieve:limit:{path}".encode()).digest()[:8], "big", signed=True)
