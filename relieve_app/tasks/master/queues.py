"""Which queues a master serves, and with how many children each.

Every queue that a ``RelieveBackend`` lists in ``TASKS`` is served. Its number of children comes
from ``--queue name=N``, else from RELIEVE_QUEUES ("mail=4,default=2"), else from ``--workers``.
A range, ``mail=4-16``, starts 4 and lets the queue grow to 16 while its tasks wait (``scaling.py``).
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
    """``["mail=4-16", "default=2"]`` or ``"mail=4-16,default=2"`` as ``{"mail": (4, 16), "default":
    (2, 2)}``: the children a queue starts with, and the most it may grow to."""
    if isinstance(items, str):
        items = [item for item in items.split(",") if item.strip()]
    sizes = {}
    for item in items:
        name, equals, count = item.partition("=")
        name = name.strip()
        least, dash, most = count.partition("-")
        bounds = (least, most) if dash else (least, least)
        if not equals or not name or not all(bound.strip().isdigit() for bound in bounds):
            raise QueueError(
                f"{where}: {item!r} should look like mail=4, or mail=4-16 to grow from 4 children to 16"
            )
        least, most = (int(bound) for bound in bounds)
        if least < 1 or most < least:
            raise QueueError(
                f"{where}: {item!r} should look like mail=4 (a queue and at least 1 child), or mail=4-16 "
                "(at least 1 child, growing to as many or more)"
            )
        sizes[name] = (least, most)
    return sizes


def sizes(option_items):
    """Children per served queue: ``{name: (least, most) or None}``, None meaning the --workers count."""
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
