"""The path tasks import ``RetryLater`` from: ``relieve_app.retry.RetryLater``. It lives in ``tasks/``."""

from relieve_app.tasks.retry import RetryLater

__all__ = ["RetryLater"]
