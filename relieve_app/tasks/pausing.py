"""Paused queues: while a queue's row is in ``PausedQueue`` no master starts a task of it.

Each master reads the paused queues every ``CONTROL_INTERVAL`` seconds and its claims skip them, so
a pause holds on every host within a second and survives restarts. Tasks already running finish;
``enqueue()`` still takes new ones, which wait for the resume.
"""

from django.utils import timezone

from relieve_app.models import PausedQueue


def _check(name):
    if not isinstance(name, str) or not name or len(name) > 100:
        raise ValueError(f"a queue name is a string of 1 to 100 characters, not {name!r:.120}")


def pause_queue(name):
    """Pause ``name``; True when it was not paused already."""
    _check(name)
    _row, created = PausedQueue.objects.get_or_create(name=name, defaults={"paused_at": timezone.now()})
    return created


def resume_queue(name):
    """Resume ``name``; True when it was paused."""
    _check(name)
    return PausedQueue.objects.filter(name=name).delete()[0] > 0


def paused_queues():
    """The names of the paused queues."""
    return set(PausedQueue.objects.values_list("name", flat=True))


def declared_queues():
    """The queues of every relieve backend in TASKS: those a pause may name."""
    from django.tasks import task_backends

    from relieve_app.tasks.backend import RelieveBackend

    return {
        queue
        for backend in task_backends.all()
        if isinstance(backend, RelieveBackend)
        for queue in backend.queues
    }
