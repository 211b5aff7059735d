"""PostgreSQL: each new READY task row is announced to every master with NOTIFY, in its own transaction.

The payload is the row's id, ``'42'``, or for a row with a priority or a run_after
``'{"id": 42, "priority": 3, "run_after": 1.7e9}'``, so a master that hears of it first still orders
it right. PostgreSQL delivers it on commit, and never for a row rolled back, a savepoint's included.
Every master LISTENs (``master/listener.py``): a web server on a host without a master still has its
work picked up at once. Other databases have no NOTIFY: the local socket and the sweep do the work.

``enqueue()``'s INSERT carries its NOTIFY in the same statement (``announcing``), at no extra round
trip. A transaction that enqueues many rows announces its first ``BY_ID`` so, and the rest with one
NOTIFY of ``SWEEP`` on their queue's channel, sent with the first of them (``Batch``): a master that
hears it reads the table at once. A NOTIFY of its own cost each enqueue about 40 µs of PostgreSQL's
time: a fifth of a second for 5,000 in one transaction (``bench/README.md``). A row the ORM creates
(a retry, the admin's, a schedule's) is announced by a ``post_save`` receiver, in the same
transaction. A row written by other means (raw SQL) waits for a master's sweep. A trigger on the
table would announce that one too, but PostgreSQL then loads and compiles PL/pgSQL in each new
database session: with Django's default ``CONN_MAX_AGE`` of 0, in every request that enqueues, where
it cost about 1.5 ms of the database's CPU.
"""

import json

from django.db import connections, transaction
from django.db.models.signals import post_save

from relieve_app.tasks import commit_batch

PREFIX = "relieve_"
MAX_CHANNEL = 63  # PostgreSQL's identifier limit
READY = "READY"
BY_ID = 100  # rows of a transaction (at one savepoint level) announced each by its id
SWEEP = "sweep"  # the payload of a NOTIFY for the rest: read the table


def channel(queue):
    name = f"{PREFIX}{queue}"
    if len(name) > MAX_CHANNEL:
        raise ValueError(f"queue name {queue!r} is too long for a NOTIFY channel ({MAX_CHANNEL} bytes)")
    return name


def payload_around(priority, run_after):
    """What goes before and after the row's id in its payload: ("", "") for a plain id."""
    if not priority and run_after is None:
        return "", ""
    rest = {"priority": priority or 0}
    if run_after is not None:
        rest["run_after"] = run_after.timestamp()
    return '{"id": ', ", " + json.dumps(rest)[1:]


def announcing(sql):
    """An ``INSERT ... RETURNING id`` made to NOTIFY for its row too; three more parameters follow
    its own (``parameters``), and it still returns the id."""
    notify = "pg_notify(%s, %s || inserted.id || %s)"
    return f"WITH inserted AS ({sql}) SELECT inserted.id, {notify} FROM inserted"


def parameters(queue, priority, run_after):
    """The parameters ``announcing`` adds; None when the queue's name is too long for a channel (a
    master refuses to start for such a queue, and its sweep finds the row)."""
    try:
        name = channel(queue)
    except ValueError:
        return None
    return [name, *payload_around(priority, run_after)]


def by_id(connection, name):
    """Whether the row ``enqueue()`` inserts now on channel ``name`` NOTIFYs its own id
    (``announcing``): always in a transaction of its own, and for the first ``BY_ID`` of a
    transaction; the others are announced by their ``Batch``'s NOTIFY of ``SWEEP``."""
    if not connection.in_atomic_block:
        return True
    batch = commit_batch.pending(connection, Batch)
    if batch is None:
        batch = Batch()
        transaction.on_commit(batch, using=connection.alias)
    return batch.carries_id(connection, name)


class Batch:
    """The enqueues of a transaction at one savepoint level, counted.

    Kept among its on-commit callbacks (and doing nothing when called) so that a rolled-back
    savepoint takes it, and the NOTIFY of ``SWEEP`` it sent there, with it: the rows written after
    that count afresh, each announced again.
    """

    def __init__(self):
        self.count = 0
        self.swept = set()  # the channels told to sweep

    def __call__(self):
        pass

    def carries_id(self, connection, name):
        self.count += 1
        if self.count <= BY_ID:
            return True
        if name not in self.swept:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_notify(%s, %s)", [name, SWEEP])
            self.swept.add(name)
        return False


def announce(row, using):
    """NOTIFY the masters of ``row``, on commit of the transaction it was created in."""
    extra = parameters(row.queue_name, row.priority, row.run_after)
    if extra is None:
        return
    name, before, after = extra
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [name, f"{before}{row.pk}{after}"])


def _on_save(sender, instance, created, raw, using, **kwargs):
    if created and not raw and instance.status == READY and connections[using].vendor == "postgresql":
        announce(instance, using)


def connect():
    """Announce every READY row the ORM creates (``apps.ready``)."""
    from relieve_app.models import TaskRecord

    post_save.connect(_on_save, sender=TaskRecord, dispatch_uid="relieve_app.tasks.notifying")
