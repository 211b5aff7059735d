"""Every system the benchmark knows, by name; the first is ours, the one the others are compared to.

A new one (a `relieve-tasks` adapter once `relieve_app.backend.RelieveBackend` exists) is one
module here with a System and one line below.
"""

from .base import PEER_PATH, System
from .celery import CELERY_DEFAULT, CELERY_RELIABLE
from .djangoq import DJANGO_Q2
from .inview import IN_VIEW
from .ours import OURS, OURS_CONNECTION_A_REQUEST, OURS_RANGE
from .postoffice import POST_OFFICE
from .tasks import TASKS_DB, TASKS_RQ

SYSTEMS = {
    system.name: system
    for system in (
        OURS,
        OURS_CONNECTION_A_REQUEST,
        OURS_RANGE,
        CELERY_RELIABLE,
        CELERY_DEFAULT,
        DJANGO_Q2,
        TASKS_DB,
        TASKS_RQ,
        POST_OFFICE,
        IN_VIEW,
    )
}

# What a run compares unless told otherwise: ours and every peer (variants of ours on request).
DEFAULT = [name for name, system in SYSTEMS.items() if system.peer or system is OURS]

__all__ = ["DEFAULT", "OURS", "PEER_PATH", "SYSTEMS", "System"]
