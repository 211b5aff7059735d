"""PostgreSQL wake-ups: every READY task row inserted sends `NOTIFY relieve_<queue>, '<id>'`.

A row with a priority or a run_after says so, as the socket's submit does, so a master that
hears of it first still orders it right: ``'{"id": 42, "priority": 3, "run_after": 1.7e9}'``.

A trigger on the table sends it (migration 0006), inside the inserting transaction, so
PostgreSQL delivers it on commit, never for a row that was rolled back, and costs the enqueue no
round trip. Every master LISTENs (``listener.py``), so a web server on a host without a master
still has its work picked up at once. Other databases have no NOTIFY: there the local socket and
the sweep do the work.
"""

from django.db import connections

PREFIX = "relieve_"
MAX_CHANNEL = 63  # PostgreSQL's identifier limit


def channel(queue):
    name = f"{PREFIX}{queue}"
    if len(name) > MAX_CHANNEL:
        raise ValueError(f"queue name {queue!r} is too long for a NOTIFY channel ({MAX_CHANNEL} bytes)")
    return name


def listen_params(using="default"):
    """Connection parameters for a master's own LISTEN connection, or None without PostgreSQL."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return None
    params = connection.get_connection_params()
    return {key: value for key, value in params.items() if isinstance(value, str | int) and value != ""}
