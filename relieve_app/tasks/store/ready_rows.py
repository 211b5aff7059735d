"""What the sweep reads: READY rows the master does not hold yet, due now or due soon.

Each read follows an index: the priorities and queues present by a skip scan of the ready index,
a priority's rows due soon by one range of it, and the rows of the lowest priority due now in
enqueue order by another, past the rows due later among them. Read outside any transaction, so
the sweep never holds SQLite's write lock; due times are the database's clock.
"""

from datetime import timedelta

from django.db import connection
from django.db.models import DurationField, ExpressionWrapper, F, Q
from django.db.models.functions import Now

from relieve_app.models import TaskRecord
from relieve_app.tasks.store.recorder import reads_only

Status = TaskRecord.Status
SWEEP_LIMIT = 10_000  # rows one sweep takes in; the next sweep takes the rest
UNTIL_DUE = ExpressionWrapper(F("run_after") - Now(), output_field=DurationField())  # None: due now
_DUE = Q(run_after__isnull=True) | Q(run_after__lte=Now())


@reads_only
def waiting(known, queues=None):
    """READY rows due now this master lacks: ``(id, queue, priority, 0.0)``, the most urgent
    first (the highest priority, then, within a queue, the longest waiting), read per queue of ``queues``
    (None: all), so a backlog in a queue this master does not serve costs it nothing:
    ``SWEEP_LIMIT`` rows of each beyond ``known``, or as many as ``queues`` gives a queue, when it
    maps names to numbers. Rows due later are ``due_within``'s. Due times are judged by the
    database's clock; read outside any transaction, so the sweep never holds SQLite's write lock."""
    known = set(known)
    found = []
    for name, limit in _limits(queues):
        found.extend(_most_urgent(name, limit, known))
    return _by_priority(found)


@reads_only
def due_within(known, queues, seconds):
    """READY rows this master lacks that fall due in the next ``seconds`` (not before): as many as
    ``queues`` maps each queue's name to, the highest priority first, then the soonest due. Each
    priority is one range of the ready index, however many rows are due now or long after."""
    known = set(known)
    until = Now() + timedelta(seconds=seconds)  # the database's clock, as for the rows due now
    found = []
    for name, limit in _limits(queues):
        later = TaskRecord.objects.filter(status=Status.READY, queue_name=name)
        later = later.filter(run_after__gt=Now(), run_after__lte=until).annotate(wait=UNTIL_DUE)
        parts = (later.filter(priority=level).order_by("run_after", "pk") for level in ready_priorities(name))
        found.extend(_first_fresh(parts, ("pk", "queue_name", "priority", "wait"), limit, known))
    return _by_priority(found)


def _limits(queues):
    limits = queues if isinstance(queues, dict) else dict.fromkeys(queues or [None], SWEEP_LIMIT)
    return sorted(limits.items(), key=lambda item: item[0] or "")


def _by_priority(found):
    found.sort(key=lambda row: -row[2])  # stable: each queue's rows stay in the order read
    return [
        (pk, queue, priority, max(wait.total_seconds(), 0.0) if wait is not None else 0.0)
        for pk, queue, priority, wait in found
    ]


def _most_urgent(queue, limit, known):
    """Up to ``limit`` READY rows of ``queue`` (None: every queue) due now and not in ``known``:
    the lowest priority's only once every higher one's are read. The higher priorities are read in
    the order of the ready index (rows never deferred first on SQLite, last on PostgreSQL, the
    others by due time), each in a few probes; then the queue's oldest first, in the order of
    another. A queue of one priority, the usual case, takes that last read alone."""
    ready = TaskRecord.objects.filter(_DUE, status=Status.READY)
    if queue is not None:
        ready = ready.filter(queue_name=queue)
    levels = ready_priorities(queue) if queue is not None else []
    parts = [ready.filter(priority=level).order_by("run_after", "pk") for level in levels[:-1]]
    parts.append(ready.order_by("enqueued_at", "pk"))
    rows = _first_fresh(parts, ("pk", "queue_name", "priority"), limit, known)
    return [(*row, None) for row in rows]  # due now: no wait


def _first_fresh(parts, fields, limit, known):
    """Up to ``limit`` rows of ``parts``, read in turn, skipping ids in ``known`` or read already
    (the last part of ``_most_urgent`` holds the higher priorities' rows again)."""
    found, skip = [], set(known)
    for part in parts:
        rows = part.values_list(*fields)[: limit - len(found) + len(skip)]
        fresh = [row for row in rows if row[0] not in skip][: limit - len(found)]
        found.extend(fresh)
        skip.update(row[0] for row in fresh)
        if len(found) >= limit:
            break
    return found


@reads_only
def ready_priorities(queue):
    """The priorities of ``queue``'s READY rows, highest first: one probe of the ready index each."""
    return _distinct_ready("priority", highest_first=True, queue=queue)


@reads_only
def ready_queues():
    """The queues that hold READY rows, one probe of the ready index per queue, however many rows."""
    return _distinct_ready("queue_name")


def _distinct_ready(column, highest_first=False, queue=None):
    """The distinct values of ``column`` among READY rows (of ``queue``, given one), in order: a
    recursive query that jumps from one value to the next in the ready index, instead of reading
    every row."""
    table = TaskRecord._meta.db_table
    where, params = "status = %s", [Status.READY]
    if queue is not None:
        where, params = f"{where} AND queue_name = %s", [*params, queue]
    pick, beyond = ("MAX", "<") if highest_first else ("MIN", ">")
    step = f"SELECT {pick}({column}) FROM {table} WHERE {where}"
    sql = (
        f"WITH RECURSIVE seen(found) AS ({step}"
        f" UNION ALL SELECT ({step} AND {column} {beyond} seen.found) FROM seen WHERE seen.found IS NOT NULL"
        f") SELECT found FROM seen WHERE found IS NOT NULL"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params * 2)
        return [row[0] for row in cursor.fetchall()]
