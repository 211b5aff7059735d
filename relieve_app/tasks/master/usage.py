"""What the master keeps of its children's ``usage`` reports: the last of each, and samples in the database.

The monitor container answers ``usage`` with {cpu, cpu_percent, memory, pid, uptime}. The last answer
of each child feeds the ``status`` operation; every answer becomes a UsageSample row for the memory
chart. Samples older than ``RETAIN`` are deleted as new ones are written, so the table stays bounded.
"""

import time
from datetime import timedelta

from django.utils import timezone

from relieve_app.models import UsageSample

RETAIN = timedelta(hours=24)


def valid(usage):
    """A report worth keeping: what a monitor sends, not whatever a broken child might."""
    if not isinstance(usage, dict):
        return False
    numbers = (usage.get("memory"), usage.get("cpu_percent"), usage.get("pid"))
    return all(isinstance(n, int | float) and not isinstance(n, bool) and n >= 0 for n in numbers)


class UsageBook:
    """The last usage report of each child, by name, with the time it arrived."""

    def __init__(self, clock=time.time):
        self.clock = clock
        self._last = {}

    def note(self, name, usage):
        if valid(usage):
            self._last[name] = {**usage, "at": self.clock()}

    def of(self, name, pid):
        """The last report of the child ``name`` if it came from the process ``pid`` (a restart forgets)."""
        usage = self._last.get(name)
        return usage if usage is not None and usage.get("pid") == pid else None


def add_sample(task_name, usage, at=None):
    """Recorder operation: store one sample and drop those past RETAIN."""
    now = at or timezone.now()
    UsageSample.objects.create(
        created_at=now,
        task_name=task_name,
        pid=int(usage["pid"]),
        memory=int(usage["memory"]),
        cpu_percent=float(usage["cpu_percent"]),
    )
    UsageSample.objects.filter(created_at__lt=now - RETAIN).delete()
