"""What several masters sharing one table need beyond a claim: leases, takeovers and releases.

A claimed row names its master (``owner``) and holds until ``lease_until``; the owner's
heartbeat renews the lease of every row it runs, however long the task takes, by the
database's clock, which every host shares. A row whose lease ran out belonged to a master
that stopped beating: the sweep of any master makes it READY again and records a ``takeover``
event. A master that was killed need not be waited for: the next one on its socket finds the lock
it held there left with its name in it (``tasks/master/locks.py``) and takes its rows at once. A master
stopped gracefully gives back what it still holds at once. SQLite has one
master per file (``tasks/master/locks.py``), so there a row held by another master's id is always an
orphan.

A child that outlives its master (``tasks/failsafe.py``) holds the row of the task it finishes under
an id of its own, ``detached:<child pid>:<master id>`` (``tasks/owners.py``): no master's, so no
master's end releases it and no start-up takes it at once. Its lease, which the child renews,
decides: a child that died leaves a row whose lease runs out, and any master takes it over then.
Operations run on the recorder's thread, inside its transactions.
"""

import logging
from datetime import timedelta

from django.db.models import DateTimeField, ExpressionWrapper, Q
from django.db.models.functions import Now
from django.utils import timezone

from relieve_app.models import TaskEvent, TaskRecord
from relieve_app.tasks import hooks
from relieve_app.tasks.owners import DETACHED, is_detached

log = logging.getLogger(__name__)

Status = TaskRecord.Status
CHUNK = 500  # ids per IN (...): well below any database's limit on parameters


def detach(task_id, masters, detached, lease):
    """Move a RUNNING row held by one of ``masters`` (ids) to ``detached``, for another ``lease``
    seconds by the database's clock; 1 if it moved, 0 if it had been taken back or ended meanwhile.
    The same call from the master and from its child moves it once: ``detached`` is among ``masters``."""
    held = TaskRecord.objects.filter(pk=task_id, status=Status.RUNNING, owner__in=[*masters, detached])
    return held.update(owner=detached, lease_until=lease_end(lease), updated_at=timezone.now())


def lease_end(seconds):
    """``now() + seconds`` by the database's clock."""
    return ExpressionWrapper(Now() + timedelta(seconds=seconds), output_field=DateTimeField())


def renew(owner, holding, lease):
    """The heartbeat's part: the rows this master runs (``holding``) stay its own for another lease.

    A row it claimed but lost track of is not renewed: its lease runs out and any master takes it.
    """
    renewed = 0
    for ids in _chunks(sorted(holding)):
        held = TaskRecord.objects.filter(owner=owner, status=Status.RUNNING, pk__in=ids)
        renewed += held.update(lease_until=lease_end(lease))
    return renewed


def hand_over(detached, master, lease):
    """A master's graceful stop: each row it runs moves to the child it let go (task id -> id)."""
    return sum(detach(task_id, [master], owner, lease) for task_id, owner in detached.items())


def take_over(owner, holding, exclusive=False, gone=()):
    """Make READY the RUNNING rows no live master holds; returns their ids.

    Rows whose lease ran out, those of the masters in ``gone`` (known to have ended), and with
    ``exclusive`` any row another master holds; never one this master has in hand (``holding``),
    however old its lease, nor one a detached child holds before its lease ran out: that child may
    be alive after its master was not.
    """
    orphans = Q(lease_until__lt=Now()) | Q(lease_until__isnull=True)
    if exclusive:
        orphans |= ~Q(owner=owner) & ~Q(owner__startswith=DETACHED)
    gone = {name for name in gone if not is_detached(name)} - {owner}
    if gone:
        orphans |= Q(owner__in=gone)
    candidates = (
        TaskRecord.objects.filter(orphans, status=Status.RUNNING)
        .select_for_update(skip_locked=True)
        .values_list("pk", "owner", "task_path")
    )
    found = [
        (pk, previous, path) for pk, previous, path in candidates if previous != owner or pk not in holding
    ]
    now = timezone.now()
    for chunk in _chunks(found):
        ids = [pk for pk, _previous, _path in chunk]
        TaskRecord.objects.filter(pk__in=ids, status=Status.RUNNING).update(
            status=Status.READY, owner="", lease_until=None, updated_at=now
        )
        _released([pk for pk, _previous, path in chunk if hooks.followed(path)], now)
    TaskEvent.objects.bulk_create(
        TaskEvent(
            task_name=owner,
            event="takeover",
            payload={"task": pk, "from": previous or "(nobody)", "by": owner},
            task_result_id=pk,
            created_at=now,
        )
        for pk, previous, _path in found
    )
    if found:
        log.warning("took over %d tasks whose master stopped beating or ended", len(found))
    return [pk for pk, _previous, _path in found]


def release(owner):
    """A graceful stop: what this master still holds is READY for the others at once."""
    held = TaskRecord.objects.filter(owner=owner, status=Status.RUNNING)
    followed = hooks.paths()
    ids = list(held.filter(task_path__in=followed).values_list("pk", flat=True)) if followed else []
    now = timezone.now()
    count = held.update(status=Status.READY, owner="", lease_until=None, updated_at=now)
    for chunk in _chunks(ids):
        _released(chunk, now)
    return count


def _released(ids, now):
    """Tell the hooks of the rows made READY again, in the transaction that did it."""
    if ids:
        rows = TaskRecord.objects.filter(pk__in=ids)
        hooks.run_in_transaction([hooks.Change(row, hooks.RELEASED, now) for row in rows])


def _chunks(items):
    items = list(items)
    return [items[start : start + CHUNK] for start in range(0, len(items), CHUNK)]
