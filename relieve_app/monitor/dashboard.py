"""The admin's "Relieve pool" page: the live pool, refreshed by a small poll, and charts drawn here as SVG.

Three views, all behind the admin's login and for staff who may view mail outcomes: the page, its
JSON (what ``relievestatus --json`` prints), and the charts alone, which the page reloads each minute.
"""

import math
from datetime import timedelta

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.db.models.functions import TruncMinute
from django.http import HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone

from relieve_app.models import MailOutcome, TaskEvent, UsageSample
from relieve_app.monitor import charts, status
from relieve_app.tasks import pausing

DAY = timedelta(hours=24)
HOUR = timedelta(hours=1)
STATUS_TIMEOUT = 0.5  # seconds a page waits for the master


def _check(request):
    if not request.user.has_perm("relieve_app.view_mailoutcome"):
        raise PermissionDenied


def page(request, admin_site):
    _check(request)
    context = {
        **admin_site.each_context(request),
        "title": "Relieve pool",
        "state": status.collect(timeout=STATUS_TIMEOUT),
        "charts": all_charts(),
        "queues": queue_switches(),
        "may_pause": request.user.has_perm(PAUSE_PERMISSION),
        "relieve_pool": True,
    }
    return TemplateResponse(request, "admin/relieve_app/pool.html", context)


PAUSE_PERMISSION = "relieve_app.change_taskrecord"


def queue_switches():
    """Each queue of the backend with whether it is paused, for the page's pause and resume buttons."""
    paused = pausing.paused_queues()
    return [{"name": name, "paused": name in paused} for name in sorted(pausing.declared_queues() | paused)]


def queue_action(request):
    """POST name=<queue> action=pause|resume: the pool page's buttons; back to the page with a message."""
    _check(request)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not request.user.has_perm(PAUSE_PERMISSION):
        raise PermissionDenied
    name, action = request.POST.get("name", ""), request.POST.get("action")
    if name not in pausing.declared_queues() | pausing.paused_queues() or action not in ("pause", "resume"):
        messages.error(request, f"No queue {name[:100]!r} to {action or 'change'}.")
    elif action == "pause":
        pausing.pause_queue(name)
        messages.success(request, f"Queue {name} paused: no task of it starts until it is resumed.")
    else:
        pausing.resume_queue(name)
        messages.success(request, f"Queue {name} resumed.")
    return redirect("admin:relieve_pool")


def state_json(request):
    _check(request)
    response = JsonResponse(status.collect(timeout=STATUS_TIMEOUT))
    response["Cache-Control"] = "no-store"
    return response


def charts_fragment(request):
    _check(request)
    response = HttpResponse("".join(f'<figure class="relieve-figure">{svg}</figure>' for svg in all_charts()))
    response["Cache-Control"] = "no-store"
    return response


def all_charts(now=None):
    now = now or timezone.now()
    return [
        charts.line_chart(messages_per_minute(now)),
        charts.line_chart(delivery_percentiles(now)),
        charts.line_chart(memory_per_child(now)),
    ]


def _hours_ago_ticks(span_hours, every):
    """Ticks in hours before now (x is minutes or hours ago, negative), labelled like "-6 h"."""
    return [(-hours, f"-{hours} h" if hours else "now") for hours in range(span_hours, -1, -every)]


def _per_minute(queryset, field, since, now):
    rows = (
        queryset.filter(**{f"{field}__gte": since})
        .annotate(minute=TruncMinute(field))
        .order_by()
        .values("minute")
        .annotate(n=Count("id"))
    )
    counts = {row["minute"]: row["n"] for row in rows}
    start = since.replace(second=0, microsecond=0)
    minutes = int((now - start).total_seconds() // 60) + 1
    points = []
    for offset in range(minutes):
        minute = start + timedelta(minutes=offset)
        points.append((round((minute - now).total_seconds() / 3600, 3), counts.get(minute, 0)))
    return points


def messages_per_minute(now):
    """Contact mail delivered, failed for good, and its failed attempts (each retried), per minute over
    the last 24 h. An attempt counts when its event is tied to a message: other tasks' failures are not
    messages that failed, and the Messages panel beside it counts messages alone too."""
    since = now - DAY
    return charts.Chart(
        title="Contact mail per minute, last 24 h",
        x_range=(-24, 0),
        x_ticks=_hours_ago_ticks(24, 6),
        y_unit="per min",
        series=[
            charts.Series(
                "delivered", _per_minute(MailOutcome.objects.filter(status="sent"), "sent_at", since, now)
            ),
            charts.Series(
                "failed", _per_minute(MailOutcome.objects.filter(status="failed"), "updated_at", since, now)
            ),
            charts.Series(
                "attempt failed",
                _per_minute(
                    TaskEvent.objects.filter(event__in=["error", "timeout"], outcome__isnull=False),
                    "created_at",
                    since,
                    now,
                ),
            ),
        ],
    )


def percentile(sorted_values, share):
    """Nearest-rank percentile of an ascending list."""
    rank = math.ceil(share * len(sorted_values))
    return sorted_values[min(max(rank, 1), len(sorted_values)) - 1]


def delivery_percentiles(now):
    """Seconds from the post to the delivery, p50 / p90 / p99 of each hour of the last 24 h."""
    rows = MailOutcome.objects.filter(status="sent", sent_at__gte=now - DAY).values_list(
        "created_at", "sent_at"
    )
    hours = {}
    for created, sent in rows:
        hour = int((now - sent).total_seconds() // 3600)
        hours.setdefault(hour, []).append(max((sent - created).total_seconds(), 0.0))
    series = {name: [] for name in ("p50", "p90", "p99")}
    for hour in sorted(hours, reverse=True):
        values = sorted(hours[hour])
        x = -hour - 0.5  # the middle of that hour
        for name, share in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
            series[name].append((x, round(percentile(values, share), 3)))
    return charts.Chart(
        title="Contact mail: time from post to delivery, per hour",
        x_range=(-24, 0),
        x_ticks=_hours_ago_ticks(24, 6),
        y_unit="seconds",
        series=[charts.Series(name, points) for name, points in series.items()],
    )


def memory_per_child(now):
    """Resident memory of each child, in MiB, over the last hour: a leak climbs, a recycle drops."""
    rows = UsageSample.objects.filter(created_at__gte=now - HOUR).values_list(
        "task_name", "created_at", "memory"
    )
    by_child = {}
    for name, at, memory in rows:
        by_child.setdefault(name, []).append(
            (round((at - now).total_seconds() / 60, 2), round(memory / 2**20, 1))
        )
    return charts.Chart(
        title="Resident memory per child (all queues), last hour",
        x_range=(-60, 0),
        x_ticks=[(-m, f"-{m} min" if m else "now") for m in range(60, -1, -15)],
        y_unit="MiB",
        series=[charts.Series(name, points) for name, points in sorted(by_child.items())],
    )
