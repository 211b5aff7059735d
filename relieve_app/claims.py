"""Claims shared by several masters: atomic, batched, owned, leased, taken over when the owner vanished.

One query hands a master as many due READY rows as it has free children, highest priority
first; on PostgreSQL the rows are chosen ``FOR UPDATE SKIP LOCKED``, so masters claiming at the
same instant get different rows and never wait on each other::

    SELECT id ... WHERE status = 'READY' AND queue_name = %s AND due
      ORDER BY priority DESC, coalesce(run_after, enqueued_at), id LIMIT n FOR UPDATE SKIP LOCKED;
    UPDATE ... SET status = 'RUNNING', owner = %s, lease_until = now() + lease WHERE id IN (...);

A claimed row names its master (``owner``) and holds until ``lease_until``, which the owner's
heartbeat renews however long the task runs. A row whose lease ran out, by the database's
clock, belonged to a master that stopped beating: the sweep of any master makes it READY again
and records the takeover. SQLite has one master per file (``filelock.py``), so there a row held
by another id is always an orphan. Operations run on the recorder's thread.
"""

import logging
from datetime import timedelta

from django.db.models import DateTimeField, ExpressionWrapper, Q
from django.db.models.functions import Coalesce, Now
from django.tasks.signals import task_started
from django.utils import timezone

from . import taskstore
from .models import MailOutcome, TaskEvent, TaskRecord

log = logging.getLogger(__name__)

Status = TaskRecord.Status
DUE = Q(run_after__isnull=True) | Q(run_after__lte=Now())
ORDER = ["-priority", Coalesce("run_after", "enqueued_at").asc(), "pk"]


def lease_end(seconds):
    """``now() + seconds`` by the database's clock, the one every host shares."""
    return ExpressionWrapper(Now() + timedelta(seconds=seconds), output_field=DateTimeField())


def claim_batch(queue, workers, owner, lease):
    """Claim up to one due row per name in ``workers``; returns (jobs, seconds until the next is due).

    Each job names the worker it is for in ``job["worker"]``. The delay is None when nothing
    waits for a later ``run_after``, or when every worker got a row.
    """
    ready = TaskRecord.objects.filter(status=Status.READY, queue_name=queue)
    ids = list(
        ready.filter(DUE)
        .order_by(*ORDER)
        .select_for_update(skip_locked=True)
        .values_list("pk", flat=True)[: len(workers)]
    )
    if ids:
        TaskRecord.objects.filter(pk__in=ids).update(
            status=Status.RUNNING,
            owner=owner,
            lease_until=lease_end(lease),
            last_attempted_at=Now(),
            updated_at=Now(),
        )
    rows = TaskRecord.objects.in_bulk(ids)
    jobs = [_start(rows[pk], worker) for pk, worker in zip(ids, workers, strict=False)]
    return jobs, None if len(ids) == len(workers) else _next_due(ready)


def renew(owner, holding, lease):
    """The heartbeat's part: the rows this master runs (``holding``) stay its own for another lease.

    A row it claimed but lost track of is not renewed: its lease runs out and anyone takes it.
    """
    held = TaskRecord.objects.filter(owner=owner, status=Status.RUNNING, pk__in=list(holding))
    return held.update(lease_until=lease_end(lease))


def take_over(owner, holding, exclusive=False):
    """Make READY the RUNNING rows no live master holds; returns the queues that got rows back.

    Rows whose lease ran out, by the database's clock, and with ``exclusive`` (SQLite: the file
    lock proves every other master dead) any row another master holds. Never one this master
    runs (``holding``), however old its lease.
    """
    running = TaskRecord.objects.filter(status=Status.RUNNING)
    orphans = Q(lease_until__lt=Now()) | Q(lease_until__isnull=True)
    if exclusive:
        orphans |= ~Q(owner=owner)
    found = list(
        running.filter(orphans)
        .exclude(owner=owner, pk__in=list(holding))
        .select_for_update(skip_locked=True)
        .values_list("pk", "owner", "queue_name", "task_path")
    )
    if not found:
        return set()
    now = timezone.now()
    ids = [pk for pk, *_rest in found]
    TaskRecord.objects.filter(pk__in=ids).update(
        status=Status.READY, owner="", lease_until=None, updated_at=Now()
    )
    mail = [pk for pk, _owner, _queue, path in found if path == taskstore.MAIL_TASK]
    MailOutcome.objects.filter(task_result__in=mail).update(
        status=MailOutcome.Status.RETRYING, updated_at=now
    )
    TaskEvent.objects.bulk_create(
        TaskEvent(
            task_name=owner,
            event="takeover",
            payload={"task": pk, "from": previous or "(nobody)", "by": owner},
            task_result_id=pk,
            created_at=now,
        )
        for pk, previous, _queue, _path in found
    )
    log.warning("took over %d tasks whose master stopped beating", len(ids))
    return {queue for _pk, _owner, queue, _path in found}


def release(owner):
    """A graceful stop: what this master still holds is READY for the others at once."""
    held = TaskRecord.objects.filter(owner=owner, status=Status.RUNNING)
    mail = list(held.filter(task_path=taskstore.MAIL_TASK).values_list("pk", flat=True))
    count = held.update(status=Status.READY, owner="", lease_until=None, updated_at=Now())
    MailOutcome.objects.filter(task_result__in=mail).update(
        status=MailOutcome.Status.RETRYING, updated_at=timezone.now()
    )
    return count


def waiting(queues):
    """({queue: seconds until a READY row is due, 0 if one is now}, other queues with READY rows)."""
    now = timezone.now()
    delays = {}
    for queue in queues:
        ready = TaskRecord.objects.filter(status=Status.READY, queue_name=queue)
        if ready.filter(DUE).exists():
            delays[queue] = 0.0
        elif (later := _next_due(ready, now)) is not None:
            delays[queue] = later
    others = TaskRecord.objects.filter(status=Status.READY).exclude(queue_name__in=list(queues))
    return delays, set(others.values_list("queue_name", flat=True).distinct())


def _start(row, worker):
    row.worker_ids = [*row.worker_ids, worker]
    row.started_at = row.started_at or row.last_attempted_at
    TaskRecord.objects.filter(pk=row.pk).update(worker_ids=row.worker_ids, started_at=row.started_at)
    if row.task_path == taskstore.MAIL_TASK:
        taskstore._mirror(row, row.last_attempted_at, status=MailOutcome.Status.SENDING, task_name=worker)
    taskstore._announce(task_started, row)
    return {**taskstore.job(row), "queue": row.queue_name, "worker": worker}


def _next_due(ready, now=None):
    run_after = ready.filter(run_after__gt=Now()).order_by("run_after").values_list("run_after", flat=True)
    first = run_after.first()
    if first is None:
        return None
    return max((first - (now or timezone.now())).total_seconds(), 0.0)
