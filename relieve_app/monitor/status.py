"""The live state of the pool, as `relievestatus`, the admin's "Relieve pool" page and its JSON show it.

The master answers the socket's ``status`` operation itself (``tasks/master/status.py``); ``collect``
asks it over the socket and adds what the database knows.
"""

from datetime import timedelta

from django.db import DatabaseError
from django.db.models import Count
from django.utils import timezone

from relieve_app.models import MailOutcome
from relieve_app.tasks import client
from relieve_app.tasks.pausing import paused_queues


def collect(timeout=1.0, now=None, socket_path=None):
    """Everything a status display shows; ``masters`` is empty when none answers (``error`` says why)."""
    masters, error = [], None
    try:
        masters.append(client.request("status", timeout=timeout, socket_path=socket_path))
    except client.ClientError as exc:
        error = str(exc)
    try:
        counts = outcome_counts(now)
        counts["paused"] = sorted(paused_queues())  # the database's word, even with no master up
    except DatabaseError as exc:  # a health check still answers for the master when the database is down
        counts = {"checked_at": (now or timezone.now()).isoformat(), "outcomes": None, "recent": None}
        counts["paused"] = []
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
