"""Django's SQLite backend, except that a request waiting for the write lock does not fall asleep.

SQLite has one write lock per database. A connection that finds it taken waits in SQLite's busy
handler, which sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, then 100 ms between its tries. The
relieve master writes again as soon as it has committed, so a request that missed the lock a few
times sleeps 25-100 ms while the master takes it between those tries: under a drain, the contact
POST's p99 on SQLite was 250-1,000 ms in most runs, nearly all of it spent in ``BEGIN IMMEDIATE``.

Here a transaction that begins IMMEDIATE (the project's ``transaction_mode``) tries again every
half millisecond, up to the connection's ``timeout``. The master keeps SQLite's own backoff, and so
do the zygote and the children it forks (``yield_to_requests``, before the fork): when a request and
the master both wait, the request gets the lock first. A child started cold, without the zygote,
asks as a request does. Everything else is Django's backend.
"""

import sqlite3
import time

from django.db import OperationalError
from django.db.backends.sqlite3 import base

POLL = 0.0005  # seconds between two tries of a request's BEGIN IMMEDIATE
DEFAULT_TIMEOUT = 5.0  # sqlite3.connect's, when OPTIONS names none

_yields = False


def yield_to_requests():
    """Keep SQLite's backoff in this process and in those it forks from now on: background work
    (a master, its children) waits behind the requests."""
    global _yields
    _yields = True


class DatabaseWrapper(base.DatabaseWrapper):
    def _start_transaction_under_autocommit(self):
        if _yields or self.transaction_mode != "IMMEDIATE":
            return super()._start_transaction_under_autocommit()
        timeout = float(self.settings_dict["OPTIONS"].get("timeout", DEFAULT_TIMEOUT))
        deadline = time.monotonic() + timeout
        raw = self.connection
        raw.execute("PRAGMA busy_timeout = 0")  # a taken lock answers at once; the loop below waits
        try:
            while True:
                try:
                    with self.wrap_database_errors:
                        raw.execute("BEGIN IMMEDIATE")
                    return
                except OperationalError as exc:
                    if not _busy(exc) or time.monotonic() >= deadline:
                        raise
                time.sleep(POLL)
        finally:
            raw.execute(f"PRAGMA busy_timeout = {round(timeout * 1000)}")


def _busy(exc):
    cause = exc.__cause__
    return isinstance(cause, sqlite3.OperationalError) and cause.sqlite_errorcode == sqlite3.SQLITE_BUSY
