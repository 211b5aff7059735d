"""The master's writes of task state: operations run on the recorder's thread, in its transactions.

Every change of a ``TaskRecord`` after its insert is made here, and a contact message's
``MailOutcome`` is written in the same operation as the task that delivers it, so the two can
never tell different stories. Signals ``task_started`` and ``task_finished`` are sent once the
write they announce is committed.

The master hands these writes over in groups (``ledger.py``): a group of claims costs one
locking SELECT, one conditional UPDATE whose row count is checked, and one bulk UPDATE, however
many tasks it holds; a group of outcomes one SELECT, one bulk UPDATE and one bulk INSERT.
"""

import logging
from datetime import timedelta
from functools import partial

from django.db import connection, transaction
from django.db.models import DurationField, ExpressionWrapper, F
from django.db.models.functions import Now
from django.tasks.signals import task_finished, task_started
from django.utils import timezone

from relieve_app.models import MailOutcome, TaskEvent, TaskRecord
from relieve_app.tasks.store import leases
from relieve_app.tasks.store.recorder import reads_only

log = logging.getLogger(__name__)

Status = TaskRecord.Status
MAIL_TASK = "relieve_app.contact.mailtask.send_contact_mail"
SWEEP_LIMIT = 10_000  # rows one sweep takes in; the next sweep takes the rest
_WAIT = ExpressionWrapper(F("run_after") - Now(), output_field=DurationField())  # None: due now


class ClaimLost(Exception):
    """Rows read as READY under lock were not all READY at the UPDATE: claim nothing, try later."""


def apply(held, outcomes, requests, owner, lease, durable=True):
    """One group of the master's ledger: outcomes first, then claims; returns the claims' results.

    ``held`` maps the ids this master runs to their rows as it last wrote them: a claim puts a
    row in, its outcome takes it out, so recording an outcome needs no SELECT. Only the
    recorder's thread touches it.

    Not ``durable`` (RELIEVE_DURABLE_WRITES off), PostgreSQL acknowledges the commit before its
    WAL reaches the disk, as SQLite's ``synchronous=NORMAL`` does here: a crash of the database
    server (not of the master, nor a lost connection) may forget the last fraction of a second
    of claims and outcomes, and those tasks run again. A task's enqueue stays durable.
    """
    if not durable and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")
    if outcomes:
        finish(held, outcomes, owner)
    return claim(held, requests, owner, lease) if requests else []


def claim(held, requests, owner, lease):
    """Claim ``(task_id, queue, worker_id)`` requests: READY and due -> RUNNING, owned by ``owner``.

    The rows are locked as they are read (FOR UPDATE SKIP LOCKED where the database has it,
    the write lock of the transaction on SQLite), then moved by an UPDATE conditional on
    ``status = READY``, run for all of them at once, whose row count must match. Each request
    gets the job for its child, ``{"later": seconds}`` when its run_after is still ahead, or
    None (not READY, another queue's, or locked by another master).
    """
    now = timezone.now()
    ready = (
        TaskRecord.objects.select_for_update(skip_locked=True)
        .filter(pk__in=[task_id for task_id, _queue, _worker in requests], status=Status.READY)
        .annotate(wait=_WAIT)
    )
    rows = {row.pk: row for row in ready}
    answers, won = [], {}
    for task_id, queue, worker_id in requests:
        row = rows.get(task_id)
        if row is None or row.queue_name != queue or task_id in won:
            answers.append(None)
        elif row.wait is not None and row.wait.total_seconds() > 0:  # by the database's clock
            answers.append({"later": row.wait.total_seconds()})
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
    held.update((pk, row) for pk, (row, _worker) in won.items())
    for row, worker_id in won.values():
        if row.task_path == MAIL_TASK:
            _mirror(row, now, status=MailOutcome.Status.SENDING, task_name=worker_id)
        _announce(task_started, row)
    return [job(won[answer][0]) if isinstance(answer, int) else answer for answer in answers]


def job(row):
    """All a child needs to run one attempt, as JSON."""
    return {
        "id": row.pk,
        "path": row.task_path,
        "args": row.args,
        "kwargs": row.kwargs,
        "takes_context": row.takes_context,
        "backend": row.backend,
        "worker_ids": row.worker_ids,
        "attempt": len(row.worker_ids),
        "timeout": row.timeout,
        "max_attempts": row.max_attempts,
        "enqueued_at": row.enqueued_at.isoformat(),
        "started_at": row.started_at.isoformat() if row.started_at else None,
        "last_attempted_at": row.last_attempted_at.isoformat() if row.last_attempted_at else None,
    }


EVENT_FIELDS = ["created_at", "task_name", "event", "payload", "outcome", "task_result"]
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


def finish(held, outcomes, owner=None):
    """Record how attempts ended: ``(task_id, worker_id, kind, payload, event, retry_in)``.

    ``kind`` "success": payload is the return value. "failure": payload is the error; READY again
    after ``retry_in`` seconds, or FAILED when that is None. A row that is no longer RUNNING, or
    (given ``owner``) no longer this master's, was taken back meanwhile and keeps its state: the
    outcome is logged and dropped.
    """
    now = timezone.now()
    rows = {pk: held.pop(pk) for pk, *_rest in outcomes if pk in held}
    missing = [pk for pk, *_rest in outcomes if pk not in rows]
    if missing:
        running = TaskRecord.objects.filter(pk__in=missing, status=Status.RUNNING)
        rows.update((row.pk, row) for row in (running if owner is None else running.filter(owner=owner)))
    mail_rows = [pk for pk, row in rows.items() if row.task_path == MAIL_TASK]
    mail = dict(
        MailOutcome.objects.filter(task_result__in=mail_rows).values_list("task_result", "pk")
        if mail_rows
        else ()
    )
    changed, events = [], []
    for task_id, worker_id, kind, payload, event, retry_in in outcomes:
        row = rows.pop(task_id, None)
        if row is None:
            log.warning("task %s is no longer running here; its outcome is not recorded", task_id)
            continue
        row.owner, row.lease_until, row.updated_at = "", None, now
        if kind == "success":
            entry = _succeeded(row, worker_id, payload, now)
        else:
            entry = _failed(row, payload, event, retry_in, now)
        changed.append(row)
        outcome_id = mail.get(row.pk)
        payload = {"task": row.pk, "attempt": row.attempts, **entry[1]}
        if outcome_id is not None:
            payload["id"] = outcome_id
        event_row = TaskEvent(task_name=worker_id, event=entry[0], payload=payload, created_at=now)
        event_row.task_result_id, event_row.outcome_id = row.pk, outcome_id
        events.append(event_row)
    if save_many(changed, FINISH_FIELDS, only_if=Status.RUNNING, owner=owner) != len(changed):
        written = set(
            TaskRecord.objects.filter(pk__in=[r.pk for r in changed], updated_at=now).values_list(
                "pk", flat=True
            )
        )
        log.warning(
            "%d outcomes found their task no longer running; not recorded", len(changed) - len(written)
        )
        changed = [row for row in changed if row.pk in written]
        events = [event for event in events if event.task_result_id in written]
    insert_many(events, EVENT_FIELDS)
    for row in changed:
        if row.status in TaskRecord.FINISHED:
            _announce(task_finished, row)


def _succeeded(row, worker_id, value, now):
    row.status, row.return_value, row.finished_at = Status.SUCCESSFUL, value, now
    message = f"done by {worker_id}"
    if row.task_path == MAIL_TASK:
        message = value.get("message", message) if isinstance(value, dict) else message
        _mirror(row, now, status=MailOutcome.Status.SENT, message=message, error="", sent_at=now)
    return "info", {"message": message}


def _failed(row, error, event, retry_in, now):
    row.errors = [*row.errors, error]
    if retry_in is None:
        row.status, row.finished_at = Status.FAILED, now
    else:
        row.status, row.run_after = Status.READY, now + timedelta(seconds=retry_in)
    if row.task_path == MAIL_TASK:
        state = MailOutcome.Status.FAILED if retry_in is None else MailOutcome.Status.RETRYING
        _mirror(row, now, status=state, error=error.get("message", ""))
    payload = {
        "message": error.get("message", ""),
        "exception": error.get("exception_class_path", ""),
        "retry_in": retry_in,
    }
    return event or "error", payload


def take_back(known, owner, exclusive=False, gone=()):
    """Make READY again the RUNNING rows no live master holds; returns how many.

    A row is taken over once its lease ran out, by the database's clock (its master stopped
    beating), at once when its master is known to have ended (``gone``), or with ``exclusive``
    (SQLite: the file lock proves every other master dead) as soon as another master holds it;
    never one this master has in hand (``known``).
    """
    return len(leases.take_over(owner, set(known), exclusive, gone))


@reads_only
def waiting(known):
    """READY rows this master lacks: ``(id, queue, priority, seconds until due, enqueued)``, the
    longest waiting first. Due times are judged by the database's clock; read outside any
    transaction, so the sweep never holds SQLite's write lock."""
    known = set(known)
    rows = (
        TaskRecord.objects.filter(status=Status.READY)
        .annotate(wait=_WAIT)
        .order_by("enqueued_at", "pk")
        .values_list("pk", "queue_name", "priority", "wait", "enqueued_at")[: SWEEP_LIMIT + len(known)]
    )
    return [
        (pk, queue, priority, max(wait.total_seconds(), 0.0) if wait is not None else 0.0, enqueued)
        for pk, queue, priority, wait, enqueued in rows
        if pk not in known
    ]


def save_many(rows, fields, only_if, owner=None):
    """One UPDATE statement run for many rows, each with its own values, each only while its
    status is still ``only_if`` (and, given ``owner``, the row is still that master's, as it was
    before this write); returns how many rows it changed.

    ``bulk_update`` builds a CASE per field and row, which costs the master more time in Python
    than the database spends on the writes; the fields still convert their values themselves.
    """
    if not rows:
        return 0
    meta = TaskRecord._meta
    columns = [meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(column.column)} = %s" for column in columns)
    sql = (
        f"UPDATE {quote(meta.db_table)} SET {assignments} "
        f"WHERE {quote(meta.pk.column)} = %s AND {quote(meta.get_field('status').column)} = %s"
    )
    condition = [str(only_if)]
    if owner is not None:
        sql += f" AND {quote(meta.get_field('owner').column)} = %s"
        condition.append(owner)
    params = [
        [column.get_db_prep_save(getattr(row, column.attname), connection) for column in columns]
        + [row.pk, *condition]
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
        return cursor.rowcount


def insert_many(rows, fields):
    """One INSERT statement run for many rows: as ``save_many``, for what ``bulk_create`` costs."""
    if not rows:
        return
    meta = type(rows[0])._meta
    columns = [meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    names = ", ".join(quote(column.column) for column in columns)
    sql = f"INSERT INTO {quote(meta.db_table)} ({names}) VALUES ({', '.join(['%s'] * len(columns))})"
    params = [
        [column.get_db_prep_save(getattr(row, column.attname), connection) for column in columns]
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


def _mirror(row, now, **fields):
    """The contact message's delivery state, in the same transaction as its task's."""
    MailOutcome.objects.filter(task_result=row.pk).update(attempts=row.attempts, updated_at=now, **fields)


def _announce(signal, row):
    """Send the signal once the write is committed; a failing receiver is logged, never replayed."""
    transaction.on_commit(partial(_send, signal, row), robust=True)


def _send(signal, row):
    from relieve_app.tasks.backend import to_result

    signal.send(sender=_backend_class(), task_result=to_result(row))


def _backend_class():
    from relieve_app.tasks.backend import RelieveBackend

    return RelieveBackend
