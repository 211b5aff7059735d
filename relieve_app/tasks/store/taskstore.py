"""The master's writes of task state: operations run on the recorder's thread, in its transactions.

Every change of a ``TaskRecord`` after its insert is made here, and the hooks an app registered
for the task's path (``tasks/hooks.py``) run in the same transaction, so an app's own row and its
task's state can never tell different stories. Signals ``task_started`` and ``task_finished`` are
sent once the write they announce is committed.

The master hands these writes over in groups (``ledger.py``): a group of claims costs one
locking SELECT, one conditional UPDATE whose row count is checked, and one bulk UPDATE, however
many tasks it holds; a group of outcomes one SELECT, one bulk UPDATE and one bulk INSERT.
"""

import logging
from datetime import timedelta
from functools import cache, partial

from django.db import connection, transaction
from django.tasks.signals import task_finished, task_started
from django.utils import timezone

from relieve_app.models import PausedQueue, TaskEvent, TaskRecord
from relieve_app.tasks import bulk, hooks, limits
from relieve_app.tasks.cancel import cancelled_error
from relieve_app.tasks.store import leases
from relieve_app.tasks.store.ready_rows import UNTIL_DUE

log = logging.getLogger(__name__)

Status = TaskRecord.Status


class ClaimLost(Exception):
    """Rows read as READY under lock were not all READY at the UPDATE: claim nothing, try later."""


def apply(held, outcomes, requests, owner, lease, durable=True, committed=None):
    """One group of the master's ledger: outcomes first, then claims; returns the claims' results.

    ``held`` maps the ids this master runs to their rows as it last wrote them: a claim puts a
    row in, its outcome takes it out, so recording an outcome needs no SELECT. Only the
    recorder's thread touches it.

    Not ``durable`` (RELIEVE_DURABLE_WRITES off), PostgreSQL acknowledges the commit before its
    WAL reaches the disk, as SQLite's ``synchronous=NORMAL`` does here: a crash of the database
    server (not of the master, nor a lost connection) may forget the last fraction of a second
    of claims and outcomes, and those tasks run again. A task's enqueue stays durable.

    ``committed``, a dict, receives the changes some hook wants to hear of once they are
    committed (``hooks.after_commit``), by task id.
    """
    if committed is not None:
        committed.clear()  # a batch that failed is replayed: only the last run counts
    if not durable and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")
    if outcomes:
        finish(held, outcomes, owner, committed)
    return claim(held, requests, owner, lease) if requests else []


def claim(held, requests, owner, lease):
    """Claim ``(task_id, queue, worker_id)`` requests: READY and due -> RUNNING, owned by ``owner``.

    The rows are locked as they are read (FOR UPDATE SKIP LOCKED where the database has it,
    the write lock of the transaction on SQLite), then moved by an UPDATE conditional on
    ``status = READY``, run for all of them at once, whose row count must match. Each request
    gets the job for its child, ``{"later": seconds}`` when its run_after is still ahead,
    ``{"paused": True}`` when its queue is paused, or None (not READY, another queue's, or locked by
    another master).
    """
    now = timezone.now()
    paused = _paused_queues()
    rows = {row.pk: row for row in _ready_rows([task_id for task_id, _queue, _worker in requests])}
    gate = limits.Gate(now)  # @task(concurrency=..., rate=...): held rows stay READY, asked for later
    gate.lock(rows.values())
    answers, won = [], {}
    for task_id, queue, worker_id in requests:
        row = rows.get(task_id)
        if row is None or row.queue_name != queue or task_id in won:
            answers.append(None)
        elif queue in paused:
            answers.append({"paused": True})
        elif row.wait is not None and row.wait > 0:  # by the database's clock
            answers.append({"later": row.wait})
        elif (held_back := gate.hold(row)) is not None:
            answers.append(held_back)
        else:
            won[task_id] = (row, worker_id)
            answers.append(task_id)
    if not won:
        return answers
    lease_until = now + timedelta(seconds=lease)
    for row, worker_id in won.values():
        row.status, row.owner, row.lease_until = Status.RUNNING, owner, lease_until
        row.last_attempted_at = row.updated_at = now
        row.worker_ids = [*row.worker_ids, worker_id]
        row.started_at = row.started_at or now
    moved = save_many([row for row, _worker in won.values()], CLAIM_FIELDS, only_if=Status.READY)
    if moved != len(won):
        raise ClaimLost(f"{len(won) - moved} of {len(won)} tasks changed under the claim")
    gate.record()
    held.update((pk, row) for pk, (row, _worker) in won.items())
    hooks.run_in_transaction(
        [
            hooks.Change(row, hooks.RUNNING, now, worker=worker_id)
            for row, worker_id in won.values()
            if hooks.followed(row.task_path)
        ]
    )
    for row, _worker_id in won.values():
        _announce(task_started, row)
    return [job(won[answer][0], lease) if isinstance(answer, int) else answer for answer in answers]


def _paused_queues():
    table = connection.ops.quote_name(PausedQueue._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT name FROM {table}")
        return {name for (name,) in cursor.fetchall()}


def _ready_rows(ids):
    """The READY rows among ``ids``, locked for this transaction, each with ``wait``: the seconds
    until its run_after by the database's clock (None or <= 0: due).

    The claim runs for every few tasks: its SQL is compiled once per size of id list (rounded up
    to a power of two, the list padded with its last id) instead of by the ORM at every call, and
    its rows are made into models as a RawQuerySet would, with the converters found once.

    On SQLite the rows are read by primary key alone and their status is checked here. SQLite has
    no statistics on a table unless someone runs ANALYZE, and without them a status in the WHERE
    clause makes it read through an index on status: every READY row of the table at each claim
    (1.5 ms for 8 ids with 20,000 waiting, 57 µs by primary key). Its transaction holds the write
    lock, so the status read here is the one the UPDATE finds. PostgreSQL keeps the status in the
    query, where SKIP LOCKED needs it; its planner reads by primary key once autovacuum has
    analyzed the table.
    """
    size = 1 << max(len(ids) - 1, 0).bit_length()
    sql, condition, converters = _claim_sql(connection.vendor, size)
    padded = [*ids, *[ids[-1]] * (size - len(ids))]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*padded, *condition])
        found = cursor.fetchall()
    for values in found:
        values = list(values)
        for index, (functions, expression) in converters:
            for convert in functions:
                values[index] = convert(values[index], expression, connection)
        wait = values.pop()
        row = TaskRecord.from_db(connection.alias, None, values)
        if row.status != Status.READY:
            continue
        row.wait = _seconds(wait)
        yield row


@cache
def _claim_sql(vendor, size):
    """The claim's SQL for ``size`` ids, the parameters that follow them (the status, but on
    SQLite), and ``(index, (converters, expression))`` for each column read that needs converting.

    The converters are kept from the connection of the thread that first asks: they read the
    database's settings, which every thread's connection shares, and get each call's connection.
    """
    sentinels = list(range(-size, 0))
    ready = {} if vendor == "sqlite" else {"status": Status.READY}
    query = (
        TaskRecord.objects.select_for_update(skip_locked=True)
        .filter(pk__in=sentinels, **ready)
        .annotate(wait=UNTIL_DUE)
        .order_by()
        .query
    )
    compiler = query.get_compiler(connection=connection)
    sql, params = compiler.as_sql()
    condition = tuple(ready.values())
    if list(params) != [*sentinels, *condition]:  # the padding above relies on this order
        raise RuntimeError(f"unexpected parameters in the claim's query: {params!r}")
    columns = [expression for expression, _sql, _alias in compiler.select]
    if [getattr(column, "target", None) for column in columns[:-1]] != list(TaskRecord._meta.concrete_fields):
        raise RuntimeError("the claim's query does not read the model's columns in order, then wait")
    return sql, condition, tuple(compiler.get_converters(columns).items())


def _seconds(wait):
    """A duration as the database returned it (a timedelta, or microseconds on SQLite) in seconds."""
    if wait is None:
        return None
    if isinstance(wait, timedelta):
        return wait.total_seconds()
    return float(wait) / 1_000_000


def job(row, lease=None):
    """All a child needs to run one attempt, as JSON; with the master that claimed it (``owner``) and
    the ``lease`` it holds it by, so the child can hold it itself should the master go first."""
    return {
        "id": row.pk,
        "owner": row.owner,
        "lease": lease,
        "path": row.task_path,
        "args": row.args,
        "kwargs": row.kwargs,
        "takes_context": row.takes_context,
        "backend": row.backend,
        "worker_ids": row.worker_ids,
        "attempt": len(row.worker_ids),
        "timeout": row.timeout,
        "max_attempts": row.max_attempts,
        "concurrency": row.concurrency,
        "enqueued_at": row.enqueued_at.isoformat(),
        "started_at": row.started_at.isoformat() if row.started_at else None,
        "last_attempted_at": row.last_attempted_at.isoformat() if row.last_attempted_at else None,
    }


EVENT_FIELDS = [field.name for field in TaskEvent._meta.concrete_fields if not field.primary_key]
CLAIM_FIELDS = [
    "status",
    "owner",
    "lease_until",
    "last_attempted_at",
    "updated_at",
    "worker_ids",
    "started_at",
]
FINISH_FIELDS = [
    "status",
    "return_value",
    "errors",
    "run_after",
    "finished_at",
    "owner",
    "lease_until",
    "updated_at",
]
WITHDRAW_FIELDS = [*FINISH_FIELDS, "worker_ids", "started_at", "last_attempted_at"]


def finish(held, outcomes, owner=None, committed=None):
    """Record how attempts ended: ``(task_id, worker_id, kind, payload, event, retry_in)``, and
    optionally the hooks to leave out (``hooks.HookFailed``).

    ``kind`` "success": payload is the return value. "failure": payload is the error; READY again
    after ``retry_in`` seconds, or FAILED when that is None. "withdrawn": a claim that never reached
    its child, its attempt undone; payload None makes it READY again, an error (a cancel) FAILED.
    A row that is no longer RUNNING, or (given ``owner``) no longer this master's, was taken back
    meanwhile and keeps its state: the outcome is logged and dropped.
    """
    now = timezone.now()
    rows = {pk: held.pop(pk) for pk, *_rest in outcomes if pk in held}
    missing = [pk for pk, *_rest in outcomes if pk not in rows]
    if missing:
        running = TaskRecord.objects.filter(pk__in=missing, status=Status.RUNNING)
        rows.update((row.pk, row) for row in (running if owner is None else running.filter(owner=owner)))
    cancelled = _cancelled_retries(outcomes)
    changes, withdrawn = [], set()
    for entry in outcomes:
        task_id, worker_id, kind, payload, event, retry_in = entry[:6]
        if task_id in cancelled:  # no retry for a task whose cancel was asked meanwhile
            message = "cancelled before it started" if kind == "withdrawn" else "cancelled; not retried"
            payload, event, retry_in = cancelled_error(message), "cancel", None
        row = rows.pop(task_id, None)
        if row is None:
            log.warning("task %s is no longer running here; its outcome is not recorded", task_id)
            continue
        row.owner, row.lease_until, row.updated_at = "", None, now
        if kind == "withdrawn":
            change = _withdrawn(row, worker_id, payload, event, now)
            withdrawn.add(task_id)
        elif kind == "success":
            change = _succeeded(row, worker_id, payload, now)
        else:
            change = _failed(row, worker_id, payload, event, retry_in, now)
        change.without = tuple(entry[6]) if len(entry) > 6 else ()
        changes.append(change)
    changed = [change.task for change in changes]
    ended = [row for row in changed if row.pk not in withdrawn]
    undone = [row for row in changed if row.pk in withdrawn]
    moved = save_many(ended, FINISH_FIELDS, only_if=Status.RUNNING, owner=owner)
    moved += save_many(undone, WITHDRAW_FIELDS, only_if=Status.RUNNING, owner=owner)
    if moved != len(changed):
        written = set(
            TaskRecord.objects.filter(pk__in=[r.pk for r in changed], updated_at=now).values_list(
                "pk", flat=True
            )
        )
        log.warning(
            "%d outcomes found their task no longer running; not recorded", len(changed) - len(written)
        )
        changes = [change for change in changes if change.task.pk in written]
    hooks.run_in_transaction([change for change in changes if hooks.followed(change.task.task_path)])
    bulk.insert_many([_event_row(change) for change in changes if change.event is not None], EVENT_FIELDS)
    for change in changes:
        if change.state == hooks.RELEASED:
            continue  # back to READY: neither an outcome for after_commit nor a finish to announce
        if committed is not None and hooks.wants_commit(change.task.task_path, change.without):
            committed[change.task.pk] = change
        if change.task.status in TaskRecord.FINISHED:
            _announce(task_finished, change.task)


def _event_row(change):
    """The TaskEvent of an attempt's end, with what the hooks added to it."""
    row, fields = change.task, dict(change.event)
    payload = {"task": row.pk, "attempt": row.attempts, **fields.pop("payload")}
    event = TaskEvent(task_name=change.worker, payload=payload, created_at=change.at, **fields)
    event.task_result_id = row.pk
    return event


def _cancelled_retries(outcomes):
    """The ids among failures about to be retried whose cancel was asked since their claim."""
    # An entry is (id, worker, kind, payload, event, retry_in), and the hooks to leave out once refused.
    # A claim given back READY (kind "withdrawn", no error) is one too: it would run again.
    retries = [
        entry[0]
        for entry in outcomes
        if entry[5] is not None or (entry[2] == "withdrawn" and entry[3] is None)
    ]
    if not retries:
        return set()
    flagged = TaskRecord.objects.filter(pk__in=retries, cancel_requested_at__isnull=False)
    return set(flagged.values_list("pk", flat=True))


def _succeeded(row, worker_id, value, now):
    row.status, row.return_value, row.finished_at = Status.SUCCESSFUL, value, now
    event = {"event": "info", "payload": {"message": f"done by {worker_id}"}}
    return hooks.Change(row, hooks.SUCCEEDED, now, worker=worker_id, value=value, event=event)


def _failed(row, worker_id, error, event, retry_in, now):
    row.errors = [*row.errors, error]
    if retry_in is None:
        row.status, row.finished_at = Status.FAILED, now
    else:
        row.status, row.run_after = Status.READY, now + timedelta(seconds=retry_in)
    payload = {
        "message": error.get("message", ""),
        "exception": error.get("exception_class_path", ""),
        "retry_in": retry_in,
    }
    state = hooks.FAILED if retry_in is None else hooks.RETRYING
    fields = {"event": event or "error", "payload": payload}
    return hooks.Change(row, state, now, worker=worker_id, error=error, event=fields)


def _withdrawn(row, worker_id, error, event, now):
    """Undo a claim that never reached its child: READY again, or FAILED with ``error`` (a cancel)."""
    row.worker_ids = row.worker_ids[:-1]
    if not row.worker_ids:
        row.started_at = row.last_attempted_at = None
    if error is None:
        row.status = Status.READY
        return hooks.Change(row, hooks.RELEASED, now, worker=worker_id)
    row.errors = [*row.errors, error]
    row.status, row.finished_at = Status.FAILED, now
    payload = {"message": error.get("message", ""), "exception": error.get("exception_class_path", "")}
    fields = {"event": event or "error", "payload": payload}
    return hooks.Change(row, hooks.FAILED, now, worker=worker_id, error=error, event=fields)


def take_back(known, owner, exclusive=False, gone=()):
    """Make READY again the RUNNING rows no live master holds; returns how many.

    A row is taken over once its lease ran out, by the database's clock (its master stopped
    beating), at once when its master is known to have ended (``gone``), or with ``exclusive``
    (SQLite: the file lock proves every other master dead) as soon as another master holds it;
    never one this master has in hand (``known``).
    """
    return len(leases.take_over(owner, set(known), exclusive, gone))


def save_many(rows, fields, only_if, owner=None):
    """One UPDATE statement run for many rows, each with its own values, each only while its
    status is still ``only_if`` (and, given ``owner``, the row is still that master's, as it was
    before this write); returns how many rows it changed."""
    where = {"status": only_if} if owner is None else {"status": only_if, "owner": owner}
    attnames = [TaskRecord._meta.get_field(name).attname for name in fields]
    items = [(row.pk, [getattr(row, attname) for attname in attnames]) for row in rows]
    return bulk.update_each(TaskRecord, fields, items, where=where)


def _announce(signal, row):
    """Send the signal once the write is committed; a failing receiver is logged, never replayed."""
    transaction.on_commit(partial(_send, signal, row), robust=True)


def _send(signal, row):
    from relieve_app.tasks.backend import load_task, to_result

    signal.send(sender=_backend_class(), task_result=to_result(row, load_task(row, fresh=True)))


def _backend_class():
    from relieve_app.tasks.backend import RelieveBackend

    return RelieveBackend
