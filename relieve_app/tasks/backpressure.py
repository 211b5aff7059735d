"""Back-pressure at enqueue time: RELIEVE_MAX_READY = {"mail": 10000}.

A queue with that many READY tasks refuses new ones with ``QueueFull`` before any row is written,
so a flood is turned away at the door instead of piling up behind children that cannot keep up.
The count and the insert are two statements: enqueues racing at the edge may pass the bound by as
many as there are at once, never more.
"""

from relieve_app.conf import app_settings
from relieve_app.models import TaskRecord


class QueueFull(Exception):
    """The queue holds RELIEVE_MAX_READY of its tasks READY already; nothing was enqueued."""

    def __init__(self, queue, limit):
        super().__init__(f"queue {queue!r} is full: {limit} tasks wait already (RELIEVE_MAX_READY)")
        self.queue = queue
        self.limit = limit


def limit_of(queue):
    """The bound on READY tasks of ``queue``, or None for none."""
    return (app_settings.RELIEVE_MAX_READY or {}).get(queue)


def ready_count(queue, limit=None):
    """READY tasks of ``queue``; given ``limit``, counted only up to it, so the count stays cheap."""
    rows = TaskRecord.objects.filter(status=TaskRecord.Status.READY, queue_name=queue).order_by()
    if limit is not None:
        rows = rows.values("pk")[:limit]
    return rows.count()


def check(queue):
    """Raise QueueFull when ``queue`` holds its bound of READY tasks."""
    limit = limit_of(queue)
    if limit is not None and ready_count(queue, limit) >= limit:
        raise QueueFull(queue, limit)


def fullness():
    """``{queue: {"ready", "limit"}}`` for each bounded queue: what the pool page shows."""
    return {
        queue: {"ready": ready_count(queue, limit), "limit": limit}
        for queue, limit in sorted((app_settings.RELIEVE_MAX_READY or {}).items())
    }
