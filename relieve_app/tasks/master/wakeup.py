"""PostgreSQL wake-ups: the LISTEN side of ``tasks/notifying.py``'s NOTIFY of each new READY row.

Every master LISTENs on the channel of each queue it serves (``listener.py``), so a web server on a
host without a master still has its work picked up at once. Other databases have no NOTIFY: there
the local socket and the sweep do the work.
"""

from django.db import connections

from relieve_app.tasks.notifying import channel

__all__ = ["channel", "listen_params"]


def listen_params(using="default"):
    """Connection parameters for a master's own LISTEN connection, or None without PostgreSQL."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return None
    params = connection.get_connection_params()
    return {key: value for key, value in params.items() if isinstance(value, str | int) and value != ""}
