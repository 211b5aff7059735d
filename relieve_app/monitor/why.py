"""Why has my task not started? Each reason in plain words, for the admin and ``relievestatus --task``.

Read from the database (and the local master's socket, for how many children a queue has), at
the moment of asking: what holds a READY task back, in the order a reader would check:
its ``run_after``, a paused queue, no master for its queue, its cap or rate limit, the tasks
ahead of it while every child of its queue is busy.
"""

from django.db.models import Q
from django.utils import timezone

from relieve_app.models import RelieveMaster, TaskRecord
from relieve_app.monitor.status_text import duration
from relieve_app.tasks import client, limits, owners
from relieve_app.tasks.pausing import paused_queues

Status = TaskRecord.Status


def queue_paused(queue_name):
    """Whether a pause holds the queue (``relieve_app.control.pause_queue``)."""
    return queue_name in paused_queues()


def why_waiting(row, now=None, timeout=0.3):
    """The reasons ``row`` has not started, as sentences; one sentence when it is not waiting."""
    now = now or timezone.now()
    if row.status == Status.RUNNING and owners.is_detached(row.owner):
        return [
            f"It is not waiting: it is running, {owners.describe(row.owner)}; that child records its end "
            f"itself. Should the child die, any master takes it back once its lease runs out"
            + (f" ({_when(row.lease_until)})." if row.lease_until else ".")
        ]
    if row.status != Status.READY:
        return [f"It is not waiting: it is {row.get_status_display().lower()}."]
    reasons = []
    if row.run_after is not None and row.run_after > now:
        reasons.append(
            f"Its run_after is ahead: it may start at {_when(row.run_after)} "
            f"(in {duration((row.run_after - now).total_seconds())})."
        )
    if queue_paused(row.queue_name):
        reasons.append(f"Its queue {row.queue_name!r} is paused.")
    masters = [m for m in RelieveMaster.objects.live() if row.queue_name in (m.queues or [])]
    if not masters:
        live = RelieveMaster.objects.live().count()
        reasons.append(
            f"No live master serves its queue {row.queue_name!r}"
            + (f" ({live} live masters serve other queues)." if live else ": no master is running.")
        )
    held = limits.holding(row, now)
    if held is not None and held[0] == "concurrency":
        running, cap = held[1]
        reasons.append(
            f"Its concurrency cap holds it: {running} of at most {cap} attempts of {row.task_path} run now; "
            "it may start when one ends."
        )
    elif held is not None:
        rate, until = held[1]
        reasons.append(
            f"Its rate limit ({rate.limit} starts per {duration(rate.period)}) holds it until {_when(until)} "
            f"(in {duration(max((until - now).total_seconds(), 1))})."
        )
    if masters:
        busy = _busy(row, masters, now, timeout)
        if busy:
            reasons.append(busy)
    if not reasons:
        reasons.append("Nothing holds it back: a master should start it within moments.")
    return reasons


def ahead_of(row, now):
    """READY tasks of its queue that a master takes before it: more urgent, or as urgent and older,
    due, and not held by their own cap or rate limit."""
    due = Q(run_after__isnull=True) | Q(run_after__lte=now)
    before = (
        Q(priority__gt=row.priority)
        | Q(priority=row.priority, enqueued_at__lt=row.enqueued_at)
        | Q(priority=row.priority, enqueued_at=row.enqueued_at, pk__lt=row.pk)
    )
    ahead = TaskRecord.objects.filter(due, before, status=Status.READY, queue_name=row.queue_name)
    limited = ahead.filter(Q(concurrency__isnull=False) | ~Q(rate="")).order_by()
    one_per_task = {r.task_path: r for r in limited.only("task_path", "concurrency", "rate")[:1000]}
    held = [path for path, other in one_per_task.items() if limits.holding(other, now) is not None]
    return ahead.exclude(task_path__in=held).count()


def _busy(row, masters, now, timeout):
    running = TaskRecord.objects.filter(status=Status.RUNNING, queue_name=row.queue_name)
    running = running.exclude(owner__startswith=owners.DETACHED).count()  # no live master's child runs those
    ahead = ahead_of(row, now)
    children = _children(row.queue_name, masters, timeout)
    if children is not None and running >= children:
        return (
            f"Every child of its queue is busy ({running} running on {children} children), "
            f"and {ahead} tasks are ahead of it."
        )
    if children is None and running and ahead:
        return f"{running} tasks of its queue run now, and {ahead} are ahead of it."
    return None


def _children(queue, masters, timeout):
    """Children serving ``queue`` across ``masters``, or None when a master's share is unknown."""
    local = {}
    try:
        state = client.request("status", timeout=timeout)
        local = {state["owner"]: {q["name"]: q["children"] for q in state["queues"]}}
    except (client.ClientError, KeyError, TypeError):
        pass
    total = 0
    for master in masters:
        if master.id in local and queue in local[master.id]:
            total += local[master.id][queue]
        elif len(master.queues) == 1:
            total += master.children
        else:
            return None
    return total


def _when(moment):
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z")
