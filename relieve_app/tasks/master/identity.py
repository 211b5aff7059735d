"""Who a master is: its host, its pid and when it started, folded into one id.

Several masters may share one database; every claim and lease names its owner by this id, so
a row is never mistaken for another master's, not even for one that ran earlier with the same
pid on the same host.
"""

import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class MasterIdentity:
    host: str
    pid: int
    started_at: datetime

    @classmethod
    def current(cls, host=None):
        """This process, started now; `host` defaults to the machine's host name."""
        return cls(host=host or socket.gethostname(), pid=os.getpid(), started_at=datetime.now(UTC))

    @property
    def id(self):
        return f"{self.host}:{self.pid}:{self.started_at:%Y%m%dT%H%M%S.%fZ}"

    def __str__(self):
        return f"host {self.host}, pid {self.pid}"
