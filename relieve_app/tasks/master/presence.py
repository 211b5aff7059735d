"""A master's row in `RelieveMaster`: registered at start, renewed by a heartbeat, removed on stop.

Every time is the database's (`Now()`), never this host's: masters on several hosts compare
leases on one clock. The operations run on the recorder's thread, as every write of the master.
"""

import asyncio
import contextlib
import logging
from datetime import timedelta

from django.db.models.functions import Now

from relieve_app.models import RelieveMaster
from relieve_app.tasks.store import leases
from relieve_app.tasks.store.leases import lease_end

log = logging.getLogger(__name__)

FORGET_GONE_AFTER = timedelta(days=1)  # a vanished master stays visible in the admin this long


# Operations: each runs on the recorder thread inside a transaction. --------------------------


def register(identity, lease, children, queues):
    RelieveMaster.objects.update_or_create(
        id=identity.id,
        defaults={
            "host": identity.host,
            "pid": identity.pid,
            "started_at": identity.started_at,
            "heartbeat_at": Now(),
            "expires_at": lease_end(lease),
            "children": children,
            "queues": list(queues),
        },
    )


def heartbeat(identity, lease, children, queues, holding=()):
    """Renew this master's lease and those of the rows it runs (``holding``).

    A master row removed meanwhile (pruned, or by hand) is registered again.
    """
    renewed = RelieveMaster.objects.filter(id=identity.id).update(
        heartbeat_at=Now(), expires_at=lease_end(lease), children=children
    )
    if not renewed:
        register(identity, lease, children, queues)
    if holding:
        leases.renew(identity.id, holding, lease)
    RelieveMaster.objects.filter(expires_at__lt=Now() - FORGET_GONE_AFTER).delete()
    return bool(renewed)


def leave(identity):
    RelieveMaster.objects.filter(id=identity.id).delete()


class Presence:
    """Keeps this master visible, and its lease alive, while it runs."""

    def __init__(self, recorder, identity, *, lease, interval, queues, children, holding=set):
        self.recorder = recorder
        self.identity = identity
        self.lease = lease
        self.interval = interval
        self.queues = list(queues)
        self.children = children  # a callable: how many children run now
        self.holding = holding  # a callable: the ids of the rows this master runs now

    async def join(self):
        await self.recorder.submit(register, self.identity, self.lease, self.children(), self.queues)

    async def run(self, stopping):
        """Heartbeat every `interval` until `stopping` is set; a failed beat is logged and retried."""
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.interval)
            if stopping.is_set():
                return
            try:
                args = (self.identity, self.lease, self.children(), self.queues, self.holding())
                if not await self.recorder.submit(heartbeat, *args):
                    log.warning("this master's row was missing; registered it again")
            except Exception:
                log.exception("heartbeat failed; the lease runs out in %.0fs without one", self.lease)

    async def leave(self):
        try:
            await self.recorder.submit(leave, self.identity)
        except Exception:
            log.exception("could not remove this master's row; it will show as gone")
