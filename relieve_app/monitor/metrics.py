"""The pool and its tasks in Prometheus's text format, written by ``prometheus_client``.

Collected at each scrape, from the database (tasks, durations, live masters, bounds) and from the
local master's socket (its children: state, restarts, memory; each queue's range of children); a
master that does not answer leaves its series out and says so in ``relieve_master_up``. The
duration histogram covers the finished tasks still in the table (``prunetasks`` removes old ones),
so its counts may go down after a prune.
"""

from datetime import timedelta

from django.db.models import Count, DurationField, ExpressionWrapper, F, Min, Q, Sum
from django.utils import timezone
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.utils import floatToGoString

from relieve_app.conf import app_settings
from relieve_app.models import RelieveMaster, TaskRecord
from relieve_app.tasks import client

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)
Status = TaskRecord.Status


class PoolCollector:
    def __init__(self, timeout=0.5, socket_path=None, now=None):
        self.timeout = timeout
        self.socket_path = socket_path
        self.now = now

    def collect(self):
        now = self.now or timezone.now()
        yield tasks_by_status()
        yield oldest_ready_age(now)
        yield duration_histogram()
        masters = GaugeMetricFamily("relieve_masters_live", "Masters whose heartbeat lease has not run out.")
        masters.add_metric([], RelieveMaster.objects.live().count())
        yield masters
        bounds = GaugeMetricFamily(
            "relieve_queue_ready_limit",
            "RELIEVE_MAX_READY: READY tasks a queue takes before QueueFull.",
            labels=["queue"],
        )
        for queue, bound in sorted((app_settings.RELIEVE_MAX_READY or {}).items()):
            bounds.add_metric([queue], bound)
        yield bounds
        yield from children(self.timeout, self.socket_path)


def tasks_by_status():
    family = GaugeMetricFamily(
        "relieve_tasks", "Task results in the table, by queue and status.", labels=["queue", "status"]
    )
    rows = TaskRecord.objects.order_by().values_list("queue_name", "status").annotate(n=Count("id"))
    for queue, status, count in sorted(rows):
        family.add_metric([queue, status], count)
    return family


def oldest_ready_age(now):
    family = GaugeMetricFamily(
        "relieve_oldest_ready_age_seconds",
        "Age of the oldest READY task that is due, per queue: a stuck queue grows it.",
        labels=["queue"],
    )
    due = Q(run_after__isnull=True) | Q(run_after__lte=now)
    rows = (
        TaskRecord.objects.filter(due, status=Status.READY)
        .order_by()
        .values_list("queue_name")
        .annotate(oldest=Min("enqueued_at"))
    )
    for queue, oldest in sorted(rows):
        family.add_metric([queue], max((now - oldest).total_seconds(), 0.0))
    return family


def duration_histogram():
    """Seconds from the last attempt's start to the finish, per task: one grouped query."""
    took = ExpressionWrapper(F("finished_at") - F("last_attempted_at"), output_field=DurationField())
    counts = {
        f"le_{n}": Count("id", filter=Q(took__lte=timedelta(seconds=bound)))
        for n, bound in enumerate(BUCKETS)
    }
    rows = (
        TaskRecord.objects.filter(status__in=TaskRecord.FINISHED, last_attempted_at__isnull=False)
        .annotate(took=took)
        .order_by()
        .values("task_path")
        .annotate(total=Count("id"), seconds=Sum("took"), **counts)
    )
    family = HistogramMetricFamily(
        "relieve_task_duration_seconds",
        "Duration of the last attempt of finished tasks, by task.",
        labels=["task"],
    )
    for row in sorted(rows, key=lambda row: row["task_path"]):
        buckets = [(floatToGoString(bound), row[f"le_{n}"]) for n, bound in enumerate(BUCKETS)]
        buckets.append(("+Inf", row["total"]))
        seconds = row["seconds"].total_seconds() if row["seconds"] is not None else 0.0
        family.add_metric([row["task_path"]], buckets, max(seconds, 0.0))
    return family


def children(timeout, socket_path):
    up = GaugeMetricFamily("relieve_master_up", "Whether the master on this host's socket answered.")
    try:
        state = client.request("status", timeout=timeout, socket_path=socket_path)
    except client.ClientError:
        up.add_metric([], 0)
        yield up
        return
    up.add_metric([], 1)
    yield up
    by_state = GaugeMetricFamily(
        "relieve_children", "Children by queue and state.", labels=["queue", "state"]
    )
    restarts = CounterMetricFamily(
        "relieve_child_restarts", "Restarts of each child.", labels=["queue", "child"]
    )
    memory = GaugeMetricFamily(
        "relieve_child_resident_memory_bytes", "Resident memory of each child.", labels=["queue", "child"]
    )
    least = GaugeMetricFamily(
        "relieve_queue_min_children", "Children a queue starts with and never goes below.", labels=["queue"]
    )
    most = GaugeMetricFamily(
        "relieve_queue_max_children",
        "Children a queue may grow to (a range, runrelieve --queue mail=4-16); its least when fixed.",
        labels=["queue"],
    )
    for queue in state.get("queues", []):
        if "scale" in queue:  # a master older than ranges does not say
            least.add_metric([queue["name"]], queue["scale"][0])
            most.add_metric([queue["name"]], queue["scale"][1])
    tally = {}
    for child in state.get("children", []):
        key = (child["queue"], child["state"])
        tally[key] = tally.get(key, 0) + 1
        restarts.add_metric([child["queue"], child["name"]], child.get("restarts") or 0)
        if child.get("memory") is not None:
            memory.add_metric([child["queue"], child["name"]], child["memory"])
    for (queue, child_state), count in sorted(tally.items()):
        by_state.add_metric([queue, child_state], count)
    yield by_state
    yield least
    yield most
    yield restarts
    yield memory


def render(timeout=0.5, socket_path=None):
    """The whole exposition, as bytes."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PoolCollector(timeout=timeout, socket_path=socket_path))
    return generate_latest(registry)
