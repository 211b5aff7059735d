"""Which queues a master serves, and with how many children each.

Every queue that a ``RelieveBackend`` lists in ``TASKS`` is served. Its number of children comes
from ``--queue name=N``, else from RELIEVE_QUEUES ("mail=4,default=2"), else from ``--workers``.
"""

from django.conf import settings
from django.utils.module_loading import import_string

from relieve_app.conf import app_settings

BACKEND = "relieve_app.backend.RelieveBackend"


class QueueError(ValueError):
    """A queue setting that cannot be used; the message says what to write instead."""


def served():
    """The queues of every RelieveBackend in TASKS, in the order they are listed."""
    names = {}
    for params in settings.TASKS.values():
        backend = params.get("BACKEND", "")
        if backend == BACKEND or _is_relieve(backend):
            names.update(dict.fromkeys(params.get("QUEUES") or ["default"]))
    return list(names)


def parse(items, where):
    """``["mail=4", "default=2"]`` or ``"mail=4,default=2"`` as ``{"mail": 4, "default": 2}``."""
    if isinstance(items, str):
        items = [item for item in items.split(",") if item.strip()]
    sizes = {}
    for item in items:
        name, equals, count = item.partition("=")
        name = name.strip()
        if not equals or not name or not count.strip().isdigit() or int(count) < 1:
            raise QueueError(f"{where}: {item!r} should look like mail=4 (a queue and at least 1 child)")
        sizes[name] = int(count)
    return sizes


def sizes(option_items):
    """Children per served queue: ``{name: N or None}``, None meaning the --workers count."""
    names = served()
    chosen = {**parse(app_settings.RELIEVE_QUEUES, "RELIEVE_QUEUES"), **parse(option_items or [], "--queue")}
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        raise QueueError(
            f"no task backend has the queue(s) {', '.join(unknown)}; the relieve backend's QUEUES in "
            f"TASKS are: {', '.join(names)}"
        )
    return {name: chosen.get(name) for name in names}


def _is_relieve(path):
    from relieve_app.tasks.backend import RelieveBackend

    try:
        return issubclass(import_string(path), RelieveBackend)
    except ImportError:
        return False
