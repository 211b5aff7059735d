"""The operations of the socket protocol: ``{"op": name}`` calls ``handle_<name>`` (``endpoint.py``)."""

import math
import os
import time

from relieve_app.tasks.master import status

MAX_PRIORITY = 100


class Operations:
    """Part of ``Master``: what a client may ask of it; bad arguments get a ValueError, never a crash."""

    def handle_ping(self):
        queues = {name: len(lane.pool.strategy.tasks) for name, lane in self.lanes.items()}
        return {"pid": os.getpid(), "workers": sum(queues.values()), "queues": queues}

    def handle_submit(self, id, queue="default", priority=0, run_after=None):
        if not isinstance(id, int) or isinstance(id, bool) or not 1 <= id < 2**63:  # a database's bigint
            raise ValueError(f"id must be a positive 64-bit integer, got {id!r:.50}")
        if not isinstance(queue, str) or queue not in self.lanes:
            raise ValueError(f"this master serves no queue {queue!r:.100}; it serves {sorted(self.lanes)}")
        if not isinstance(priority, int) or isinstance(priority, bool) or abs(priority) > MAX_PRIORITY:
            raise ValueError(f"priority must be a whole number from -100 to 100, got {priority!r:.50}")
        if run_after is not None and (
            not isinstance(run_after, int | float)
            or isinstance(run_after, bool)
            or not math.isfinite(run_after)
        ):
            raise ValueError(f"run_after must be a Unix time or null, got {run_after!r:.50}")
        if self._stopping.is_set():
            raise ValueError("the master is stopping; the sweep of the next start will run it")
        now = time.time()
        delay = max(run_after - now, 0.0) if run_after is not None else 0.0
        self.enqueue(id, queue, priority, delay, at=run_after if run_after is not None else now)
        return {"queued": id}

    def handle_status(self):
        return status.of_master(self)

    def handle_reload(self):
        """Like SIGHUP: replace the children one at a time, each after its current send."""
        self.reloader.request("asked over the socket")
        return {"reloading": True}
