"""PostgreSQL wake-ups: NOTIFY sent with the enqueueing transaction, heard by a master's Listener."""

import asyncio
from datetime import timedelta

import psycopg
import pytest
from django.db import connection, connections, transaction
from django.test import Client
from django.utils import timezone

from relieve_app.contact import views
from relieve_app.models import MailOutcome, TaskRecord
from relieve_app.tasks import notifying
from relieve_app.tasks.master import wakeup
from relieve_app.tasks.master.listener import Listener
from tests.tasks_fixtures import basic

pytestmark = pytest.mark.django_db(transaction=True)

on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="NOTIFY is PostgreSQL's; this runs in the PostgreSQL pass"
)

DATA = {"emitter": "ada@example.org", "subject": "Hi", "body": "A message long enough to be sent along."}


def test_only_postgresql_has_a_listen_connection():
    if connection.vendor == "postgresql":
        assert wakeup.listen_params()["dbname"] == connection.settings_dict["NAME"]
    else:
        assert wakeup.listen_params() is None


def test_a_queue_name_too_long_for_a_channel_is_refused():
    assert wakeup.channel("mail") == "relieve_mail"
    with pytest.raises(ValueError, match="too long"):
        wakeup.channel("q" * 60)


class Heard:
    """A Listener running on its own loop, with what it heard."""

    def __init__(self):
        self.heard = asyncio.Queue()
        self.connects = 0

    def on_connect(self):
        self.connects += 1

    async def next(self, timeout=10):
        return await asyncio.wait_for(self.heard.get(), timeout)


async def start_listener():
    heard = Heard()
    listener = Listener(
        wakeup.listen_params(),
        {wakeup.channel("mail"): "mail"},
        lambda queue, row_id, hints: heard.heard.put_nowait((queue, row_id, hints)),
        heard.on_connect,
        on_sweep=lambda queue: heard.heard.put_nowait(("sweep", queue)),
    )
    task = asyncio.ensure_future(listener.run())
    await asyncio.wait_for(listener.connected.wait(), 10)
    return heard, listener, task


async def stop_listener(task):
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@on_postgres
def test_a_post_notifies_on_commit_and_a_rollback_notifies_nothing(settings, tmp_path):
    settings.RELIEVE_SOCKET = str(tmp_path / "nobody.sock")  # no master: only NOTIFY tells of the post

    def roll_back():
        try:
            with transaction.atomic():
                views.enqueue(DATA)
                transaction.set_rollback(True)
        finally:
            connections.close_all()  # this thread's own connection, or the test database cannot be dropped

    def post():
        try:
            return Client().post("/contact/", DATA, HTTP_ACCEPT="application/json")
        finally:
            connections.close_all()

    async def scenario():
        heard, _listener, task = await start_listener()
        await asyncio.to_thread(roll_back)
        response = await asyncio.to_thread(post)
        first = await heard.next()
        await stop_listener(task)
        return response, first, heard.heard.qsize()

    response, first, more = asyncio.run(scenario())
    assert response.status_code == 202
    outcome = MailOutcome.objects.get()  # the rolled-back one was never stored, nor announced
    assert outcome.pk == response.json()["id"]
    assert first == ("mail", outcome.task_result_id, {})
    assert more == 0


def hear(write, count):
    """The first ``count`` things heard while ``write()`` runs in a thread, and how many more came."""

    async def scenario():
        heard, _listener, task = await start_listener()
        ids = await asyncio.to_thread(write)
        got = [await heard.next() for _ in range(count)]
        await asyncio.sleep(0.3)  # nothing more comes
        more = heard.heard.qsize()
        await stop_listener(task)
        return ids, got, more

    return asyncio.run(scenario())


def assert_announced(write, later):
    """``write()`` (in a thread) returns the ids of a plain row, one of priority 7 and one to run at
    ``later``, all on "mail": each is heard with its hints, in that order, and nothing more."""
    (plain, urgent, deferred), got, more = hear(write, 3)
    assert got[0] == ("mail", plain, {})
    assert got[1] == ("mail", urgent, {"priority": 7})
    queue, row_id, hints = got[2]
    assert (queue, row_id, hints["priority"]) == ("mail", deferred, 0)
    assert hints["run_after"] == pytest.approx(later.timestamp(), abs=1e-3)
    assert more == 0


@on_postgres
def test_every_ready_row_inserted_is_announced_with_its_hints_and_no_other_is():
    """Whatever the ORM inserts, as a retry, the admin or a schedule do, is announced as enqueue() is."""
    later = timezone.now() + timedelta(hours=1)

    def insert():
        try:
            with transaction.atomic():
                plain = TaskRecord.objects.create(task_path="t.plain", queue_name="mail")
                urgent = TaskRecord.objects.create(task_path="t.urgent", queue_name="mail", priority=7)
                TaskRecord.objects.create(task_path="t.done", queue_name="mail", status="SUCCESSFUL")
                TaskRecord.objects.create(task_path="t.elsewhere", queue_name="default")
                deferred = TaskRecord.objects.create(task_path="t.later", queue_name="mail", run_after=later)
            return plain.pk, urgent.pk, deferred.pk
        finally:
            connections.close_all()

    assert_announced(insert, later)  # and not the finished row, nor the one of another queue


@on_postgres
def test_enqueue_announces_its_row_with_its_hints_and_a_rolled_back_savepoint_nothing():
    """enqueue()'s INSERT carries the NOTIFY; a savepoint rolled back takes its NOTIFY with it."""
    later = timezone.now() + timedelta(hours=1)
    on_mail = basic.add.using(queue_name="mail")

    def enqueue():
        try:
            with transaction.atomic():
                plain = on_mail.enqueue(1, 2)
                with pytest.raises(RuntimeError), transaction.atomic():
                    on_mail.enqueue(3, 4)
                    raise RuntimeError("this part is undone")
                urgent = on_mail.using(priority=7).enqueue(5, 6)
                deferred = on_mail.using(run_after=later).enqueue(7, 8)
            return int(plain.id), int(urgent.id), int(deferred.id)
        finally:
            connections.close_all()

    assert_announced(enqueue, later)
    assert TaskRecord.objects.count() == 3


def in_a_thread(write):
    def run():
        try:
            return write()
        finally:
            connections.close_all()

    return run


@on_postgres
def test_a_transaction_announces_its_first_rows_by_id_and_the_rest_with_one_sweep(monkeypatch):
    """Past ``BY_ID`` rows, one NOTIFY of "sweep" tells the masters of all the others of a queue."""
    monkeypatch.setattr(notifying, "BY_ID", 3)
    on_mail = basic.add.using(queue_name="mail")

    @in_a_thread
    def enqueue():
        with transaction.atomic():
            return [int(on_mail.enqueue(n, n).id) for n in range(7)]

    ids, got, more = hear(enqueue, 4)
    assert got == [("mail", ids[0], {}), ("mail", ids[1], {}), ("mail", ids[2], {}), ("sweep", "mail")]
    assert more == 0
    assert TaskRecord.objects.filter(pk__in=ids, status="READY").count() == 7


@on_postgres
def test_a_rolled_back_savepoint_takes_its_sweep_notice_with_it(monkeypatch):
    """Rows enqueued after a savepoint that sent the "sweep" rolled back are announced again: by id
    for the first ``BY_ID``, then by a "sweep" of their own."""
    monkeypatch.setattr(notifying, "BY_ID", 2)
    on_mail = basic.add.using(queue_name="mail")

    @in_a_thread
    def enqueue():
        with transaction.atomic():
            with pytest.raises(RuntimeError), transaction.atomic():
                for n in range(3):  # two by id, and the third sends the "sweep"
                    on_mail.enqueue(n, n)
                raise RuntimeError("this part is undone")
            return [int(on_mail.enqueue(n, n).id) for n in range(3)]

    ids, got, more = hear(enqueue, 3)
    assert got == [("mail", ids[0], {}), ("mail", ids[1], {}), ("sweep", "mail")]
    assert more == 0
    assert sorted(TaskRecord.objects.values_list("pk", flat=True)) == ids


@on_postgres
def test_a_transaction_of_its_own_always_announces_by_id(monkeypatch):
    monkeypatch.setattr(notifying, "BY_ID", 1)

    @in_a_thread
    def enqueue():
        return [int(basic.add.using(queue_name="mail").enqueue(n, n).id) for n in range(3)]

    ids, got, more = hear(enqueue, 3)
    assert got == [("mail", row_id, {}) for row_id in ids]
    assert more == 0


@on_postgres
def test_no_trigger_is_left_to_load_plpgsql_in_each_session():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
            [TaskRecord._meta.db_table],
        )
        assert cursor.fetchone()[0] == 0


def notify(payload, channel="relieve_mail"):
    params = wakeup.listen_params()
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute("SELECT pg_notify(%s, %s)", [channel, payload])


def terminate_listeners():
    params = wakeup.listen_params()
    with psycopg.connect(**params, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND query LIKE 'LISTEN %%'"
        ).fetchone()[0]


@on_postgres
def test_bad_payloads_are_ignored_and_a_dropped_connection_is_reopened():
    async def scenario():
        heard, listener, task = await start_listener()
        for bad in ("not an id", "-3", "0", "", '{"id": "41"}', "[41]", '{"priority": 3}', "Sweep"):
            await asyncio.to_thread(notify, bad)
        await asyncio.to_thread(notify, "7", "relieve_other")  # a queue this master does not serve
        await asyncio.to_thread(notify, "sweep", "relieve_other")
        await asyncio.to_thread(notify, "41")
        first = await heard.next()
        await asyncio.to_thread(notify, '{"id": 43, "priority": 5, "run_after": 1.5, "other": 1}')
        hinted = await heard.next()

        assert await asyncio.to_thread(terminate_listeners) >= 1
        while heard.connects < 2:  # reconnected, and told the master so it can sweep
            await asyncio.sleep(0.05)
        await asyncio.wait_for(listener.connected.wait(), 10)
        await asyncio.to_thread(notify, "42")
        second = await heard.next()
        await stop_listener(task)
        return first, hinted, second

    first, hinted, second = asyncio.run(scenario())
    assert first == ("mail", 41, {})
    assert hinted == ("mail", 43, {"priority": 5, "run_after": 1.5})  # what the socket's submit takes
    assert second == ("mail", 42, {})


@on_postgres
def test_a_callback_that_raises_costs_one_wake_up_and_not_the_listener(caplog):
    heard = asyncio.Queue()

    def on_sweep(queue):
        raise RuntimeError("a bug in the master's callback")

    async def scenario():
        listener = Listener(
            wakeup.listen_params(),
            {wakeup.channel("mail"): "mail"},
            lambda queue, row_id, hints: heard.put_nowait(row_id),
            on_sweep=on_sweep,
        )
        task = asyncio.ensure_future(listener.run())
        await asyncio.wait_for(listener.connected.wait(), 10)
        await asyncio.to_thread(notify, "sweep")
        await asyncio.to_thread(notify, "41")
        got = await asyncio.wait_for(heard.get(), 10)
        await stop_listener(task)
        return got

    assert asyncio.run(scenario()) == 41
    assert "handling a notice to sweep mail failed" in caplog.text
