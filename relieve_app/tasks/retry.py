"""What a task raises to be run again later: a temporary failure, like a mail server saying 4xx.

Any other exception ends the task ``FAILED`` at once, as Django specifies. ``RetryLater`` instead
puts it back as ``READY`` with a ``run_after`` that grows with each attempt (RELIEVE_RETRY_DELAY,
doubling, capped at ten minutes) unless ``delay`` names one, until the task's maximum number of
attempts; then it ends ``FAILED`` with this error.
"""


class RetryLater(Exception):
    __module__ = "relieve_app.retry"  # the public path: tasks import it, and errors record it, from there

    def __init__(self, message="", *, delay=None):
        super().__init__(message)
        if delay is not None and not 0 <= delay < 366 * 86400:
            raise ValueError(f"delay must be between 0 seconds and a year, got {delay!r}")
        self.delay = delay
