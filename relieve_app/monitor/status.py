"""The live state of the pool, as `relievestatus`, the admin's "Relieve pool" page and its JSON show it.

``of_master`` runs inside the master and answers the socket's ``status`` operation; ``collect`` runs
anywhere else: it asks the master over its socket and adds what the database knows.
"""

import os
import socket
import time
from datetime import timedelta

from django.db import DatabaseError
from django.db.models import Count
from django.utils import timezone

from relieve_app.models import MailOutcome
from relieve_app.tasks import client


def of_master(master, now=None):
    """The master's own view: host, pid, uptime, every queue, and every child."""
    now = time.time() if now is None else now
    lanes = list(master.lanes.values())
    children = [child_state(master, lane, task, now) for lane in lanes for task in lane.pool.tasks.values()]
    queues = [
        {
            "name": lane.name,
            "children": lane.size,
            "available": len(lane.pool.strategy.tasks),
            "queued": len(lane),
            "sending": len(lane.busy),
        }
        for lane in lanes
    ]
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "owner": master.owner,
        "started_at": master.started_at,
        "uptime": now - master.started_at if master.started_at else 0.0,
        "reloading": master.reloader.busy if master.reloader else False,
        "queues": queues,
        # Totals over every queue, as the first versions of this operation had them.
        "queued": sum(queue["queued"] for queue in queues),
        "sending": len(master._running),
        "retrying": len(master._timers),
        "settling": len(master._settling),  # outcomes whose write is not committed yet
        "children": children,
    }


def child_state(master, lane, task, now):
    usage = master.usage.of(task.name, task.pid) if task.running else None
    return {
        "name": task.name,
        "queue": lane.name,
        "pid": task.pid if task.running else None,
        "state": _state(master, task),
        "running": task.running,
        "in_flight": task.in_flight,
        "done": master._calls.get(task.name, 0),
        "restarts": task.restarts,
        "cpu_percent": usage["cpu_percent"] if usage else None,
        "memory": usage["memory"] if usage else None,
        "uptime": now - task.started_at if task.running and task.started_at else None,
    }


def _state(master, task):
    if task.running:
        return "recycling" if task.name in master._recycling else "running"
    return "stopped" if master._stopping.is_set() else "restarting"


# Anywhere else: the socket and the database --------------------------------------------------


def collect(timeout=1.0, now=None, socket_path=None):
    """Everything a status display shows; ``masters`` is empty when none answers (``error`` says why)."""
    masters, error = [], None
    try:
        masters.append(client.request("status", timeout=timeout, socket_path=socket_path))
    except client.ClientError as exc:
        error = str(exc)
    try:
        counts = outcome_counts(now)
    except DatabaseError as exc:  # a health check still answers for the master when the database is down
        counts = {"checked_at": (now or timezone.now()).isoformat(), "outcomes": None, "recent": None}
        error = f"{error}; database: {exc}" if error else f"database: {exc}"
    return {"masters": masters, "error": error, **counts}


def outcome_counts(now=None):
    """Rows by status, and what was delivered or failed for good in the last minute and hour."""
    now = now or timezone.now()
    by_status = dict.fromkeys(MailOutcome.Status.values, 0)
    for row in MailOutcome.objects.order_by().values("status").annotate(n=Count("id")):
        by_status[row["status"]] = row["n"]
    recent = {}
    for label, span in (("minute", timedelta(minutes=1)), ("hour", timedelta(hours=1))):
        since = now - span
        recent[label] = {
            "delivered": MailOutcome.objects.filter(status="sent", sent_at__gte=since).count(),
            "failed": MailOutcome.objects.filter(status="failed", updated_at__gte=since).count(),
        }
    return {"checked_at": now.isoformat(), "outcomes": by_status, "recent": recent}


def master_alive(timeout=0.3):
    """Whether a master answers on RELIEVE_SOCKET now; for pages that only need yes or no."""
    try:
        client.request("ping", timeout=timeout)
    except client.ClientError:
        return False
    return True
