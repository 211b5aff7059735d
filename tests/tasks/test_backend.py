"""RelieveBackend on the web side: what enqueue() stores and says, and how results read back."""

import asyncio
import math
import time
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, connections, transaction
from django.tasks import TaskResultStatus, default_task_backend, task_backends
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued
from django.utils import timezone

from relieve_app.models import TaskRecord
from relieve_app.tasks.backend import RelieveBackend
from tests.fake_master import acknowledge_each, stay_silent, through_socket
from tests.tasks_fixtures import basic, contextual

pytestmark = pytest.mark.django_db


def received(master, count, timeout=5.0):
    """What the stand-in master read, once it has ``count`` requests: enqueue() waits for no answer."""
    deadline = time.monotonic() + timeout
    while len(master.requests) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return master.requests


def test_the_project_uses_it_and_it_supports_everything():
    assert isinstance(task_backends["default"], RelieveBackend)
    assert default_task_backend.queues == {"default", "mail"}
    for feature in ("supports_defer", "supports_async_task", "supports_get_result", "supports_priority"):
        assert getattr(default_task_backend, feature) is True


@through_socket
@pytest.mark.django_db(transaction=True)
def test_enqueue_stores_in_the_callers_transaction_and_tells_the_master_on_commit(fake_master):
    master = fake_master()
    run_after = timezone.now() + timedelta(minutes=5)
    with transaction.atomic():
        result = basic.add.using(priority=7, run_after=run_after).enqueue(1, b=2)
        assert TaskRecord.objects.filter(pk=result.id).exists()
        assert master.requests == []  # nothing said before the commit
    row = TaskRecord.objects.get(pk=result.id)
    assert (row.task_path, row.queue_name, row.priority, row.args, row.kwargs) == (
        "tests.tasks_fixtures.basic.add",
        "default",
        7,
        [1],
        {"b": 2},
    )
    assert received(master, 1) == [
        {
            "op": "submit",
            "args": {"id": row.pk, "priority": 7, "run_after": run_after.timestamp()},
            "reply": False,
        }
    ]
    assert result.status == TaskResultStatus.READY and result.attempts == 0


@through_socket
@pytest.mark.django_db(transaction=True)
def test_tasks_committed_together_are_handed_over_on_one_connection(fake_master, caplog):
    master = fake_master(acknowledge_each)
    with transaction.atomic():
        results = [basic.add.enqueue(n, n) for n in range(3)]
        mail = contextual.async_attempt.using(queue_name="mail").enqueue(0)
    assert [r["args"] for r in received(master, 4)] == [
        *({"id": int(r.id)} for r in results),
        {"id": int(mail.id), "queue": "mail"},
    ]
    assert master.connections == 1
    assert "not handed" not in caplog.text


@through_socket
@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_savepoint_hands_nothing_over_and_the_rest_goes(fake_master):
    master = fake_master(acknowledge_each)
    with transaction.atomic():
        kept = basic.add.enqueue(1, 1)
        with pytest.raises(RuntimeError), transaction.atomic():
            basic.add.enqueue(2, 2)
            raise RuntimeError("the inner work failed")
        also_kept = basic.add.enqueue(3, 3)
    assert [r["args"]["id"] for r in received(master, 2)] == [int(kept.id), int(also_kept.id)]
    assert master.connections == 1
    assert TaskRecord.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_enqueue_leaves_nothing_and_tells_nobody(fake_master):
    master = fake_master()
    with pytest.raises(RuntimeError), transaction.atomic():
        basic.add.enqueue(1, 2)
        raise RuntimeError("the caller's work failed")
    assert not TaskRecord.objects.exists() and received(master, 1, timeout=0.3) == []


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL's NOTIFY; runs in the PostgreSQL pass"
)
@pytest.mark.django_db(transaction=True)
def test_on_postgresql_enqueue_leaves_the_socket_to_notify(fake_master):
    master = fake_master(acknowledge_each)
    basic.add.enqueue(1, 2)
    assert received(master, 1, timeout=0.5) == []


@through_socket
@pytest.mark.django_db(transaction=True)
def test_a_master_that_never_answers_does_not_hold_enqueue(fake_master, settings, caplog):
    settings.RELIEVE_ACK_TIMEOUT = 5.0
    master = fake_master(stay_silent)
    started = time.monotonic()
    result = basic.noop.enqueue()
    assert time.monotonic() - started < 1.0  # RELIEVE_ACK_TIMEOUT is longer: no reply was awaited
    assert received(master, 1) == [{"op": "submit", "args": {"id": int(result.id)}, "reply": False}]
    assert "not handed" not in caplog.text


@through_socket
@pytest.mark.django_db(transaction=True)
def test_enqueue_succeeds_with_the_master_down(master_socket, caplog):
    result = basic.noop.enqueue()
    assert TaskRecord.objects.get(pk=result.id).status == "READY"
    assert f"Task {result.id} was not handed" in caplog.text
    assert "it stays queued for the master's sweep" in caplog.text

    with transaction.atomic():
        results = [basic.noop.enqueue() for _ in range(3)]
    assert f"Tasks {results[0].id} and 2 more were not handed" in caplog.text
    assert "they stay queued for the master's sweep" in caplog.text


@pytest.mark.parametrize(
    ("args", "kwargs", "where"),
    [
        ((object(), 1), {}, "argument 0"),
        ((1, {1, 2}), {}, "argument 1"),
        ((1,), {"b": timezone.now()}, "b is not JSON"),
        ((math.nan, 1), {}, "argument 0"),
        ((1, [1, b"x"]), {}, "argument 1"),
    ],
)
def test_arguments_that_are_not_json_fail_at_enqueue(master_socket, args, kwargs, where):
    with pytest.raises(InvalidTask, match=f"tests.tasks_fixtures.basic.add: {where}"):
        basic.add.enqueue(*args, **kwargs)
    assert not TaskRecord.objects.exists()


def nested(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("args", "kwargs", "where", "why"),
    [
        ((nested(10_000), 1), {}, "argument 0", "nested deeper than 200"),
        ((1,), {"b": {(1, 2): "x"}}, "b", "dict key \\(1, 2\\) \\(tuple\\)"),
        ((1,), {"b": {1: "x"}}, "b", "dict key 1 \\(int\\)"),
        ((1, [{"k": "a\x00b"}]), {}, "argument 1", "NUL"),
        ((1,), {"b": "\ud800"}, "b", "lone surrogate"),
        ((1,), {"b": {"\udfff": 1}}, "b", "dict key with a lone surrogate"),
        (
            ("x" * (600 * 1024), 1),
            {},
            "the arguments take 614411 bytes",
            "RELIEVE_MAX_ARGS_BYTES \\(524288\\)",
        ),
    ],
)
@pytest.mark.django_db(transaction=True)
def test_arguments_no_database_or_frame_can_carry_fail_at_enqueue(master_socket, args, kwargs, where, why):
    with pytest.raises(InvalidTask, match=f"tests.tasks_fixtures.basic.add: {where}.*{why}"):
        basic.add.enqueue(*args, **kwargs)
    assert not TaskRecord.objects.exists()


def test_a_keyword_name_that_is_not_a_string_fails_at_enqueue(master_socket):
    with pytest.raises(InvalidTask, match="keyword \\(1, 2\\) is a tuple"):
        default_task_backend.enqueue(basic.add, [1], {(1, 2): 2})
    assert not TaskRecord.objects.exists()


def test_the_largest_arguments_are_a_setting(master_socket, settings):
    settings.RELIEVE_MAX_ARGS_BYTES = 100
    basic.add.enqueue("x" * 80, "")
    with pytest.raises(InvalidTask, match="RELIEVE_MAX_ARGS_BYTES \\(100\\)"):
        basic.add.enqueue("x" * 100, "")
    assert TaskRecord.objects.count() == 1


def test_status_reads_back_as_django_task_result_status(master_socket):
    result = basic.add.get_result(basic.add.enqueue(1, 2).id)
    assert type(result.status) is TaskResultStatus and result.status.label == "Ready"


def test_tuples_are_stored_as_the_lists_the_child_will_get(master_socket):
    result = basic.add.enqueue((1, 2), b={"k": (3,)})
    assert TaskRecord.objects.get(pk=result.id).args == [[1, 2]]
    assert result.kwargs == {"b": {"k": [3]}}


def test_task_enqueued_is_sent(master_socket):
    seen = []

    def receiver(sender, task_result, **kwargs):
        seen.append((sender, task_result.id, task_result.status))

    task_enqueued.connect(receiver)
    try:
        result = basic.noop.enqueue()
    finally:
        task_enqueued.disconnect(receiver)
    assert seen == [(RelieveBackend, result.id, "READY")]


def test_get_result_reads_the_stored_state(master_socket):
    result = basic.add.enqueue(2, 2)
    TaskRecord.objects.filter(pk=result.id).update(
        status="SUCCESSFUL",
        return_value=4,
        worker_ids=["default0", "default1"],
        errors=[{"exception_class_path": "builtins.TimeoutError", "traceback": "tb", "message": "slow"}],
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
    fetched = basic.add.get_result(result.id)
    assert (fetched.status, fetched.return_value, fetched.attempts) == ("SUCCESSFUL", 4, 2)
    assert fetched.errors[0].exception_class is TimeoutError and fetched.errors[0].traceback == "tb"
    assert fetched.worker_ids == ["default0", "default1"] and fetched.finished_at is not None
    result.refresh()
    assert result.status == "SUCCESSFUL" and result.return_value == 4


@pytest.mark.django_db(transaction=True)
def test_aget_result_and_arefresh(master_socket):
    async def scenario():
        result = await contextual.async_attempt.aenqueue(0)
        fetched = await default_task_backend.aget_result(result.id)
        await result.arefresh()
        await sync_to_async(close_connections)()  # the thread's own, so the test database can go
        return result, fetched

    result, fetched = asyncio.run(scenario())
    assert fetched.task.func is contextual.async_attempt.func and fetched.status == "READY"
    assert fetched.id == result.id and result.status == "READY"


def close_connections():
    connections.close_all()


@pytest.mark.parametrize("unknown", ["999999", "abc", "", "1e3", None, "-1"])
def test_an_unknown_id_raises_does_not_exist(unknown):
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(unknown)


def test_a_row_whose_task_is_gone_still_reads():
    row = TaskRecord.objects.create(task_path="gone.module.job", queue_name="old", backend="default")
    result = default_task_backend.get_result(str(row.pk))
    assert result.status == "READY" and result.task.queue_name == "old"


@pytest.mark.parametrize(("option", "value"), [("timeout", 0), ("timeout", -1), ("max_attempts", 0)])
def test_limits_are_checked_when_the_task_is_declared(option, value):
    from django.tasks import task

    def job():
        pass

    job.__qualname__ = "job"  # as if module-level
    with pytest.raises(InvalidTask, match=option):
        task(**{option: value})(job)


ROW_FIELDS = {
    "task_path": basic.add.module_path,
    "queue_name": "default",
    "backend": "default",
    "priority": 7,
    "takes_context": False,
    "run_after": None,
    "timeout": 12.5,
    "max_attempts": 3,
    "concurrency": None,
    "rate": "",
    "args": [1, {"deep": ["é", None]}],
    "kwargs": {"b": 2},
}


@pytest.mark.parametrize(
    "changes",
    [
        {"run_after": timezone.now() + timedelta(minutes=1)},
        # The same shape again with other values: a statement made once per task must not keep them.
        {"priority": -3, "timeout": 0.25, "max_attempts": None, "rate": "5/s", "args": [], "kwargs": {}},
        # A quote and a percent sign written into the SQL as literals must arrive as they were.
        {"queue_name": "it's 100%s", "takes_context": True, "concurrency": 4, "unique_key": "k" * 64},
    ],
)
def test_the_row_enqueue_writes_is_the_row_the_orm_writes(changes):
    from django.test.utils import CaptureQueriesContext

    from relieve_app.tasks import rows

    fields = ROW_FIELDS | changes
    with CaptureQueriesContext(connection) as queries:
        ours = rows.create(**fields)
    theirs = TaskRecord.objects.create(**(fields | {"unique_key": None}))

    # Its own statement, not the ORM's: the ORM names every column, NULL ones too.
    assert len(queries) == 1 and '"lease_until"' not in queries[0]["sql"]
    assert ours.pk and ours.pk != theirs.pk and not ours._state.adding
    mine, orm = TaskRecord.objects.get(pk=ours.pk), TaskRecord.objects.get(pk=theirs.pk)
    names = [field.attname for field in TaskRecord._meta.concrete_fields if field.attname != "id"]
    stamped = {"enqueued_at", "updated_at"}  # now(), a moment apart
    assert {n: getattr(mine, n) for n in names if n not in stamped} == {
        n: getattr(orm, n) for n in names if n not in stamped
    } | {"unique_key": fields.get("unique_key")}
    assert all(getattr(mine, n) is not None for n in stamped)
    # The row handed back is the one stored, as the ORM's create() hands back its own.
    assert {n: getattr(ours, n) for n in names if n not in stamped} == {
        n: getattr(mine, n) for n in names if n not in stamped
    }
    assert (mine.status, mine.args, mine.queue_name) == ("READY", fields["args"], fields["queue_name"])
