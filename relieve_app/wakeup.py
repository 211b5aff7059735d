"""PostgreSQL wake-ups: enqueueing a row also sends `NOTIFY relieve_<queue>, '<id>'`.

The notification is part of the enqueueing transaction, so PostgreSQL delivers it on commit and
never for a row that was rolled back. Every master LISTENs (``listener.py``), so a web server on a
host without a master still has its work picked up at once. Other databases have no NOTIFY: there
the local socket and the sweep do the work.
"""

from django.db import connections

PREFIX = "relieve_"
MAX_CHANNEL = 63  # PostgreSQL's identifier limit


def channel(queue):
    name = f"{PREFIX}{queue}"
    if len(name) > MAX_CHANNEL:
        raise ValueError(f"queue name {queue!r} is too long for a NOTIFY channel ({MAX_CHANNEL} bytes)")
    return name


def notify(queue, row_id, using="default"):
    """Inside the caller's transaction: wake every master listening on `queue` for `row_id`."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [channel(queue), str(row_id)])
    return True


def listen_params(using="default"):
    """Connection parameters for a master's own LISTEN connection, or None without PostgreSQL."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return None
    params = connection.get_connection_params()
    return {key: value for key, value in params.items() if isinstance(value, str | int) and value != ""}
