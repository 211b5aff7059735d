"""The path projects name in ``TASKS``: ``relieve_app.backend.RelieveBackend``. It lives in ``tasks/``."""

from relieve_app.tasks.backend import RelieveBackend

__all__ = ["RelieveBackend"]
