"""The master's writes of task state, called as the recorder calls them: claims, outcomes, sweeps."""

from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from relieve_app.contact.outcomes import MAIL_TASK
from relieve_app.models import MailOutcome, PausedQueue, TaskEvent, TaskRecord, TaskStart
from relieve_app.tasks import hooks
from relieve_app.tasks.store import ready_rows, taskstore

pytestmark = pytest.mark.django_db

ME = "host:1:1"


def record(status="READY", queue="default", path="tests.tasks_fixtures.basic.add", **fields):
    return TaskRecord.objects.create(
        task_path=path, queue_name=queue, backend="default", status=status, **fields
    )


def claim(*requests, held=None):
    return taskstore.apply({} if held is None else held, [], list(requests), ME, 60)


def test_a_claim_takes_ready_due_rows_of_its_queue_and_nothing_else():
    ready, running = record(), record("RUNNING", owner="other:2:2")
    mail, later = record(queue="mail"), record(run_after=timezone.now() + timedelta(minutes=5))

    answers = claim(
        (ready.pk, "default", "default0"),
        (ready.pk, "default", "default1"),  # the same id twice in one group: once only
        (running.pk, "default", "default1"),
        (mail.pk, "default", "default1"),  # wrong queue
        (later.pk, "default", "default1"),
        (999_999, "default", "default1"),
    )

    assert answers[0]["id"] == ready.pk and answers[0]["attempt"] == 1
    assert answers[1:4] == [None, None, None] and answers[5] is None
    # By the database's clock, which SQLite reads to the millisecond: up to 1 ms behind this one's.
    assert 290 < answers[4]["later"] <= 300.001
    ready.refresh_from_db()
    assert (ready.status, ready.owner, ready.worker_ids) == ("RUNNING", ME, ["default0"])
    assert ready.started_at and ready.lease_until > timezone.now()
    assert TaskRecord.objects.get(pk=running.pk).owner == "other:2:2"


def test_a_claim_reads_its_rows_by_primary_key_however_many_wait():
    """SQLite has no statistics on a table unless ANALYZE ran: with a status in the claim's WHERE
    clause, it read through an index on status, every READY row of the table at each claim."""
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL's plan is its planner's: by primary key once the table is analyzed")
    TaskRecord.objects.bulk_create(
        TaskRecord(task_path="tests.tasks_fixtures.basic.add", queue_name="default", backend="default")
        for _ in range(500)
    )
    ids = list(TaskRecord.objects.order_by("pk").values_list("pk", flat=True)[:8])
    reads = []

    def capture(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("SELECT") and "run_after" in sql:
            reads.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        answers = claim(*[(pk, "default", f"default{n}") for n, pk in enumerate(ids)])

    assert [answer["id"] for answer in answers] == ids
    [(sql, params)] = reads
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        plan = " ".join(str(line) for line in cursor.fetchall())
    assert "INTEGER PRIMARY KEY" in plan, plan


def test_the_rows_a_claim_reads_are_the_rows_the_orm_reads():
    """The claim reads its rows with a plain cursor and the converters found once: every field, the
    JSON, dates and booleans included, is what the ORM gives, and ``wait`` is seconds."""
    later = timezone.now() + timedelta(minutes=5)
    rows = [
        record(args=[1, {"a": [None, "é"]}], kwargs={"k": 2.5}, takes_context=True, priority=-3),
        record(run_after=later, errors=[{"exception_class_path": "x.Y", "traceback": "t"}]),
        record("RUNNING", owner="other:2:2", worker_ids=["default0"], lease_until=later),
    ]
    with transaction.atomic():
        read = {row.pk: row for row in taskstore._ready_rows([row.pk for row in rows])}

    assert sorted(read) == [rows[0].pk, rows[1].pk]  # not the RUNNING one
    for row in rows[:2]:
        fresh = TaskRecord.objects.get(pk=row.pk)
        for field in TaskRecord._meta.concrete_fields:
            assert getattr(read[row.pk], field.attname) == getattr(fresh, field.attname), field.name
        assert read[row.pk]._state.db == fresh._state.db and not read[row.pk]._state.adding
    assert read[rows[0].pk].wait is None
    assert 290 < read[rows[1].pk].wait <= 300.001


def test_a_claim_in_a_paused_queue_takes_nothing_and_says_paused():
    row = record()
    PausedQueue.objects.create(name="default")

    assert claim((row.pk, "default", "default0")) == [{"paused": True}]
    row.refresh_from_db()
    assert (row.status, row.worker_ids) == ("READY", [])


def test_outcomes_finish_retry_or_fail_and_log_an_event():
    ok, retried, failed = record(), record(), record()
    held = {}
    claim(*((row.pk, "default", "default0") for row in (ok, retried, failed)), held=held)
    error = {"exception_class_path": "builtins.OSError", "message": "gone", "traceback": "tb"}

    taskstore.apply(
        held,
        [
            (ok.pk, "default0", "success", {"sum": 3}, None, None),
            (retried.pk, "default0", "failure", error, "error", 30.0),
            (failed.pk, "default0", "failure", error, "timeout", None),
        ],
        [],
        ME,
        60,
    )

    ok.refresh_from_db(), retried.refresh_from_db(), failed.refresh_from_db()
    assert (ok.status, ok.return_value, ok.owner) == ("SUCCESSFUL", {"sum": 3}, "")
    assert ok.finished_at is not None
    assert (retried.status, retried.errors, retried.finished_at) == ("READY", [error], None)
    assert retried.run_after > timezone.now() + timedelta(seconds=25)
    assert (failed.status, failed.errors) == ("FAILED", [error])
    assert list(TaskEvent.objects.order_by("task_result").values_list("task_result", "event")) == [
        (ok.pk, "info"),
        (retried.pk, "error"),
        (failed.pk, "timeout"),
    ]
    assert held == {}


def test_a_failure_due_for_retry_ends_failed_when_its_cancel_was_asked():
    row = record()
    held = {}
    claim((row.pk, "default", "default0"), held=held)
    TaskRecord.objects.filter(pk=row.pk).update(cancel_requested_at=timezone.now())
    error = {"exception_class_path": "builtins.OSError", "message": "gone", "traceback": "tb"}

    taskstore.apply(held, [(row.pk, "default0", "failure", error, "error", 5.0)], [], ME, 60)

    row.refresh_from_db()
    assert row.status == "FAILED" and row.finished_at is not None
    assert row.errors[-1]["exception_class_path"] == "relieve_app.control.TaskCancelled"
    assert TaskEvent.objects.get(task_result=row).event == "cancel"


def test_a_claim_withdrawn_before_its_child_took_it_counts_no_attempt():
    retried, given_back, cancelled, flagged = record(worker_ids=["default1"]), record(), record(), record()
    held = {}
    claim(*((row.pk, "default", "default0") for row in (retried, given_back, cancelled, flagged)), held=held)
    TaskRecord.objects.filter(pk=flagged.pk).update(cancel_requested_at=timezone.now())
    seen = []
    hook = hooks.register(retried.task_path, in_transaction=seen.extend)
    error = {"exception_class_path": "relieve_app.control.TaskCancelled", "message": "no", "traceback": ""}
    try:
        taskstore.apply(
            held,
            [
                (retried.pk, "default0", "withdrawn", None, None, None),
                (given_back.pk, "default0", "withdrawn", None, None, None),
                (cancelled.pk, "default0", "withdrawn", error, "cancel", None),
                (flagged.pk, "default0", "withdrawn", None, None, None),  # its cancel wins
            ],
            [],
            ME,
            60,
        )
    finally:
        hooks.unregister(retried.task_path, hook)

    for row in (retried, given_back, cancelled, flagged):
        row.refresh_from_db()
    assert (retried.status, retried.worker_ids, retried.owner) == ("READY", ["default1"], "")
    assert retried.started_at is not None  # its earlier attempt did start
    assert (given_back.status, given_back.worker_ids, given_back.started_at) == ("READY", [], None)
    for row in (cancelled, flagged):
        assert (row.status, row.worker_ids, row.started_at) == ("FAILED", [], None)
        assert row.errors[-1]["exception_class_path"] == "relieve_app.control.TaskCancelled"
    assert flagged.errors[-1]["message"] == "cancelled before it started"
    assert sorted(TaskEvent.objects.values_list("task_result", "event")) == [
        (cancelled.pk, "cancel"),
        (flagged.pk, "cancel"),
    ]
    states = {change.task.pk: change.state for change in seen}
    assert states == {
        retried.pk: hooks.RELEASED,
        given_back.pk: hooks.RELEASED,
        cancelled.pk: hooks.FAILED,
        flagged.pk: hooks.FAILED,
    }


def test_an_outcome_for_a_task_no_longer_running_is_dropped():
    row = record()
    held = {}
    claim((row.pk, "default", "default0"), held=held)
    TaskRecord.objects.filter(pk=row.pk).update(status="READY")  # taken back meanwhile

    taskstore.apply(held, [(row.pk, "default0", "success", 1, None, None)], [], ME, 60)

    row.refresh_from_db()
    assert (row.status, row.return_value) == ("READY", None)
    assert not TaskEvent.objects.exists()


def mail_task():
    """A contact mail's task, READY, and its message."""
    task = record(queue="mail", path=MAIL_TASK)
    outcome = MailOutcome.objects.create(
        emitter="a@example.org", recipient="me@example.com", subject="s", body="b", task_result=task
    )
    return task, outcome


def test_a_mail_outcome_is_written_with_its_task():
    task, outcome = mail_task()
    held = {}
    claim((task.pk, "mail", "mail0"), held=held)
    outcome.refresh_from_db()
    assert (outcome.status, outcome.attempts, outcome.task_name) == ("sending", 1, "mail0")

    error = {"exception_class_path": "relieve_app.retry.RetryLater", "message": "421 busy (SMTP 421)"}
    taskstore.apply(held, [(task.pk, "mail0", "failure", error, "error", 5.0)], [], ME, 60)
    outcome.refresh_from_db()
    assert (outcome.status, outcome.error) == ("retrying", "421 busy (SMTP 421)")

    TaskRecord.objects.filter(pk=task.pk).update(run_after=None)
    claim((task.pk, "mail", "mail1"), held=held)
    taskstore.apply(held, [(task.pk, "mail1", "success", {"message": "Mail sent"}, None, None)], [], ME, 60)
    outcome.refresh_from_db()
    assert (outcome.status, outcome.attempts, outcome.error, outcome.message) == ("sent", 2, "", "Mail sent")
    assert outcome.sent_at is not None
    assert TaskEvent.objects.filter(outcome=outcome, task_result=task).count() == 2


def test_a_mail_claim_given_back_before_its_child_took_it_leaves_the_message_as_it_was():
    task, outcome = mail_task()
    held = {}
    claim((task.pk, "mail", "mail0"), held=held)
    taskstore.apply(held, [(task.pk, "mail0", "withdrawn", None, None, None)], [], ME, 60)
    outcome.refresh_from_db()
    assert (outcome.status, outcome.attempts, outcome.task_name) == ("queued", 0, "")

    error = {"exception_class_path": "relieve_app.retry.RetryLater", "message": "421 busy (SMTP 421)"}
    claim((task.pk, "mail", "mail1"), held=held)
    taskstore.apply(held, [(task.pk, "mail1", "failure", error, "error", 0.0)], [], ME, 60)
    claim((task.pk, "mail", "mail0"), held=held)
    taskstore.apply(held, [(task.pk, "mail0", "withdrawn", None, None, None)], [], ME, 60)
    outcome.refresh_from_db()  # tried once, by mail1: retrying, as its task says
    assert (outcome.status, outcome.attempts, outcome.task_name) == ("retrying", 1, "mail1")


def test_the_sweep_takes_back_rows_no_live_attempt_holds_and_lists_ready_ones():
    mine, lost = record("RUNNING", owner=ME), record("RUNNING", owner=ME)
    crashed = record("RUNNING", owner="gone:9:9")
    ready, known = record(), record()

    assert taskstore.take_back({mine.pk, known.pk}, ME) == 2
    rows = ready_rows.waiting({mine.pk, known.pk})

    assert TaskRecord.objects.get(pk=mine.pk).status == "RUNNING"
    assert {pk for pk, *_rest in rows} == {lost.pk, crashed.pk, ready.pk}
    assert TaskRecord.objects.get(pk=crashed.pk).status == "READY"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="asynchronous commit is PostgreSQL's")
@pytest.mark.parametrize(("durable", "expected"), [(True, "on"), (False, "off")])
def test_claims_and_outcomes_commit_asynchronously_unless_durable(durable, expected):
    row = record()
    with transaction.atomic():
        taskstore.apply({}, [], [(row.pk, "default", "default0")], ME, 60, durable=durable)
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone()[0] == expected


def test_a_hook_that_fails_takes_its_tasks_write_with_it():
    """The hook runs inside the transaction of the task's change: neither commits without the other."""
    task = record()

    def refuse(changes):
        raise RuntimeError("the app's row cannot be written")

    hook = hooks.register(task.task_path, in_transaction=refuse)
    try:
        with pytest.raises(hooks.HookFailed, match="cannot be written"), transaction.atomic():
            claim((task.pk, "default", "default0"))
    finally:
        hooks.unregister(task.task_path, hook)
    task.refresh_from_db()
    assert (task.status, task.worker_ids) == ("READY", [])


# @task(concurrency=..., rate=...): judged at the claim, held rows stay READY


CAPPED = "tests.tasks_fixtures.flow.capped"
RATED = "tests.tasks_fixtures.flow.rated"


def test_a_cap_holds_back_what_would_pass_it_and_lets_other_tasks_through():
    first, second, other = record(path=CAPPED, concurrency=1), record(path=CAPPED, concurrency=1), record()

    answers = claim(
        (first.pk, "default", "default0"),
        (second.pk, "default", "default1"),
        (other.pk, "default", "default2"),
    )

    assert answers[0]["id"] == first.pk and answers[2]["id"] == other.pk
    assert answers[1] == {"later": 1.0, "held": "concurrency", "path": CAPPED}
    assert TaskRecord.objects.get(pk=second.pk).status == "READY"
    # While the first runs, on this master or another, the second is held again.
    assert claim((second.pk, "default", "default1")) == [
        {"later": 1.0, "held": "concurrency", "path": CAPPED}
    ]
    TaskRecord.objects.filter(pk=first.pk).update(status="SUCCESSFUL")
    assert claim((second.pk, "default", "default1"))[0]["id"] == second.pk


def test_a_rate_admits_its_count_then_holds_until_the_oldest_start_leaves_the_window():
    rows = [record(path=RATED, rate="2/m") for _ in range(3)]

    answers = claim(*((row.pk, "default", f"default{n}") for n, row in enumerate(rows)))

    assert [answer["id"] for answer in answers[:2]] == [rows[0].pk, rows[1].pk]
    assert 59 < answers[2]["later"] <= 60 and answers[2]["held"] == "rate"
    assert TaskStart.objects.filter(task_path=RATED).count() == 2
    # A start older than the window no longer counts, and is forgotten by the next start.
    TaskStart.objects.update(at=timezone.now() - timedelta(seconds=61))
    assert claim((rows[2].pk, "default", "default0"))[0]["id"] == rows[2].pk
    assert TaskStart.objects.filter(task_path=RATED).count() == 1


def test_a_retry_counts_as_a_start_of_the_rate():
    row = record(path=RATED, rate="1/h")
    held = {}
    claim((row.pk, "default", "default0"), held=held)
    error = {"exception_class_path": "builtins.OSError", "message": "again", "traceback": ""}
    taskstore.apply(held, [(row.pk, "default0", "failure", error, "error", 0.0)], [], ME, 60)
    TaskRecord.objects.filter(pk=row.pk).update(run_after=None)  # due now

    [answer] = claim((row.pk, "default", "default0"))
    assert 3590 < answer["later"] <= 3600
