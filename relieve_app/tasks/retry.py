"""Retrying: what a task raises to be run again later, and the exceptions it names in ``retry_on``.

Any other exception ends the task ``FAILED`` at once, as Django specifies. ``RetryLater`` instead
puts it back as ``READY`` with a ``run_after`` that grows with each attempt (RELIEVE_RETRY_DELAY,
doubling, capped at RELIEVE_MAX_RETRY_DELAY) unless ``delay`` names one, until the task's maximum
number of attempts; then it ends ``FAILED`` with this error.

``@task(retry_on=(ConnectionError, "smtplib.SMTPServerDisconnected"), max_attempts=5)`` does the
same for the exceptions named, subclasses included, with exponential backoff and full jitter: the
wait before attempt n+1 is drawn uniformly between 0 and ``min(cap, base * 2 ** (n - 1))``, where
``base`` is the task's ``retry_delay`` or RELIEVE_RETRY_DELAY and ``cap`` RELIEVE_MAX_RETRY_DELAY,
so many tasks failing together do not all come back at the same moment.
"""

import random

from django.utils.module_loading import import_string


class RetryLater(Exception):
    __module__ = "relieve_app.retry"  # the public path: tasks import it, and errors record it, from there

    def __init__(self, message="", *, delay=None):
        super().__init__(message)
        if delay is not None and not 0 <= delay < 366 * 86400:
            raise ValueError(f"delay must be between 0 seconds and a year, got {delay!r}")
        self.delay = delay


def exception_classes(retry_on):
    """``retry_on`` as a tuple of exception classes; ValueError naming an entry that is not one."""
    if isinstance(retry_on, str | type):
        retry_on = (retry_on,)
    if not isinstance(retry_on, tuple | list):
        raise ValueError(f"give a tuple of exception classes or dotted paths, not {retry_on!r:.100}")
    classes = []
    for entry in retry_on:
        kind = entry
        if isinstance(entry, str):
            try:
                kind = import_string(entry)
            except ImportError as exc:
                raise ValueError(f"{entry!r} cannot be imported: {exc}") from None
        if not (isinstance(kind, type) and issubclass(kind, BaseException)):
            raise ValueError(f"{entry!r:.100} is not an exception class")
        classes.append(kind)
    return tuple(classes)


def backoff(attempt, base, cap, draw=random.uniform):
    """Seconds to wait after failed attempt ``attempt`` (1 for the first): full jitter."""
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    return draw(0, ceiling)
