"""Plain statements for many rows: the same rows the ORM would read and write."""

from datetime import timedelta

import pytest
from django.utils import timezone

from relieve_app.models import MailOutcome, TaskEvent, TaskRecord
from relieve_app.tasks import bulk

pytestmark = pytest.mark.django_db


def task(**fields):
    return TaskRecord.objects.create(task_path="tests.tasks_fixtures.basic.add", backend="default", **fields)


def outcome(task_result, subject="hello"):
    return MailOutcome.objects.create(
        emitter="v@example.org", recipient="o@example.com", subject=subject, body="b", task_result=task_result
    )


def test_update_each_writes_each_row_its_own_values_converted_by_its_fields():
    first, second, untouched = task(), task(), task()
    at = timezone.now() - timedelta(minutes=1)

    changed = bulk.update_each(
        TaskRecord,
        ["status", "worker_ids", "updated_at"],
        [(first.pk, ["RUNNING", ["default0"], at]), (second.pk, ["FAILED", [], at])],
    )

    assert changed == 2
    rows = {row.pk: row for row in TaskRecord.objects.all()}
    assert (rows[first.pk].status, rows[first.pk].worker_ids, rows[first.pk].updated_at) == (
        "RUNNING",
        ["default0"],
        at,
    )
    assert (rows[second.pk].status, rows[second.pk].worker_ids) == ("FAILED", [])
    assert rows[untouched.pk].status == "READY"


def test_update_each_changes_only_the_rows_that_match_where_and_counts_them():
    mine, theirs = task(status="RUNNING", owner="me"), task(status="RUNNING", owner="them")

    changed = bulk.update_each(
        TaskRecord,
        ["status"],
        [(mine.pk, ["SUCCESSFUL"]), (theirs.pk, ["SUCCESSFUL"])],
        where={"status": "RUNNING", "owner": "me"},
    )

    assert changed == 1
    assert dict(TaskRecord.objects.values_list("owner", "status")) == {"me": "SUCCESSFUL", "them": "RUNNING"}
    # One row alone takes the other path (execute, not executemany): counted the same way.
    assert bulk.update_each(TaskRecord, ["status"], [(theirs.pk, ["FAILED"])], where={"owner": "me"}) == 0
    assert bulk.update_each(TaskRecord, ["status"], [(theirs.pk, ["FAILED"])], where={"owner": "them"}) == 1


def test_nothing_to_write_or_read_runs_no_statement(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert bulk.update_each(TaskRecord, ["status"], []) == 0
        assert bulk.pairs(MailOutcome, "task_result", "id", []) == {}
        bulk.insert_many([], ["event"])


def test_pairs_maps_a_foreign_key_to_the_rows_that_hold_it():
    with_outcome, without = task(), task()
    mail = outcome(with_outcome)

    assert bulk.pairs(MailOutcome, "task_result", "id", [with_outcome.pk, without.pk]) == {
        with_outcome.pk: mail.pk
    }


def test_insert_many_writes_what_the_orm_would_read_back():
    row = task()
    at = timezone.now()
    events = [
        TaskEvent(
            task_name="mail0", event="info", payload={"n": n, "text": "é"}, created_at=at, task_result=row
        )
        for n in range(3)
    ]

    bulk.insert_many(events, ["task_name", "event", "payload", "created_at", "task_result"])

    stored = TaskEvent.objects.filter(task_result=row).order_by("pk")
    assert [(event.payload, event.created_at, event.task_name) for event in stored] == [
        ({"n": n, "text": "é"}, at, "mail0") for n in range(3)
    ]


def test_create_writes_the_row_the_orms_create_writes(django_assert_num_queries):
    values = {"emitter": "v@example.org", "recipient": "o@example.com", "subject": "é " * 40, "body": "**b**"}
    delivering, before = task(), timezone.now()
    with django_assert_num_queries(1):
        ours = bulk.create(MailOutcome, **values, task_result=delivering)
    theirs = MailOutcome.objects.create(**values, task_result=ours.task_result)

    assert ours.pk and not ours._state.adding and ours._state.db == "default"
    read, orms = MailOutcome.objects.get(pk=ours.pk), MailOutcome.objects.get(pk=theirs.pk)
    changing = {"id", "reference", "created_at", "updated_at"}
    for field in MailOutcome._meta.concrete_fields:
        if field.name not in changing:
            assert getattr(read, field.attname) == getattr(orms, field.attname), field.name
        assert getattr(read, field.attname) == getattr(ours, field.attname), field.name
    assert len(read.reference) == len(orms.reference) and read.reference != orms.reference
    assert before <= read.created_at <= read.updated_at <= timezone.now()


def test_create_leaves_to_the_orm_a_model_whose_saves_are_listened_to():
    from django.db.models.signals import post_save

    heard = []

    def listener(sender, instance, created, **kwargs):
        heard.append((instance.subject, created))

    post_save.connect(listener, sender=MailOutcome)
    try:
        bulk.create(MailOutcome, emitter="v@example.org", recipient="o@example.com", subject="s", body="b")
    finally:
        post_save.disconnect(listener, sender=MailOutcome)
    assert heard == [("s", True)]


def test_create_leaves_to_the_orm_an_id_given_and_a_model_with_a_save_of_its_own(monkeypatch):
    given = bulk.create(MailOutcome, id=4242, emitter="v@example.org", recipient="o@example.com", subject="s")
    assert given.pk == 4242 and MailOutcome.objects.filter(pk=4242).exists()

    saved = []
    stock_save = MailOutcome.save

    def own_save(self, *args, **kwargs):
        saved.append(self.subject)
        return stock_save(self, *args, **kwargs)

    monkeypatch.setattr(MailOutcome, "save", own_save)
    row = bulk.create(MailOutcome, emitter="v@example.org", recipient="o@example.com", subject="own")
    assert saved == ["own"] and MailOutcome.objects.get(pk=row.pk).subject == "own"


def test_update_each_writes_a_null_and_text_into_every_row_whatever_the_columns_type():
    at = timezone.now()
    rows = [task(status="RUNNING", owner="me", lease_until=at) for _ in range(3)]

    changed = bulk.update_each(
        TaskRecord,
        ["status", "owner", "lease_until", "return_value", "worker_ids"],
        [(row.pk, ["SUCCESSFUL", "", None, None, ["mail0", "mail1"]]) for row in rows],
        where={"status": "RUNNING"},
    )

    assert changed == 3
    assert (
        list(TaskRecord.objects.values_list("status", "owner", "lease_until", "return_value", "worker_ids"))
        == [("SUCCESSFUL", "", None, None, ["mail0", "mail1"])] * 3
    )


def test_update_each_refuses_a_value_too_long_for_its_column_rather_than_cut_it():
    from django.db import DataError, IntegrityError, transaction

    rows = [task(), task()]
    too_long = "x" * (TaskRecord._meta.get_field("owner").max_length + 1)

    # SQLite does not enforce a length: the value is kept whole there, never cut.
    try:
        with transaction.atomic():
            bulk.update_each(TaskRecord, ["owner"], [(rows[0].pk, [too_long]), (rows[1].pk, ["short"])])
    except (DataError, IntegrityError):
        assert list(TaskRecord.objects.order_by("pk").values_list("owner", flat=True)) == ["", ""]
    else:
        assert list(TaskRecord.objects.order_by("pk").values_list("owner", flat=True)) == [too_long, "short"]


def test_update_each_writes_a_row_given_twice_once_for_each_in_their_order():
    row = task(status="RUNNING")

    changed = bulk.update_each(TaskRecord, ["status"], [(row.pk, ["SUCCESSFUL"]), (row.pk, ["FAILED"])])

    assert changed == 2
    assert TaskRecord.objects.get(pk=row.pk).status == "FAILED"


def test_many_rows_are_written_in_chunks_each_row_its_own_values(monkeypatch):
    monkeypatch.setattr(bulk, "CHUNK", 2)
    rows = [task() for _ in range(5)]

    changed = bulk.update_each(TaskRecord, ["owner"], [(row.pk, [f"owner {row.pk}"]) for row in rows])
    bulk.insert_many(
        [
            TaskEvent(task_name=f"mail{n}", event="info", payload={"n": n}, task_result=rows[n])
            for n in range(5)
        ],
        ["task_name", "event", "payload", "created_at", "task_result"],
    )

    assert changed == 5
    assert dict(TaskRecord.objects.values_list("pk", "owner")) == {row.pk: f"owner {row.pk}" for row in rows}
    assert list(TaskEvent.objects.order_by("pk").values_list("task_name", "payload", "task_result")) == [
        (f"mail{n}", {"n": n}, rows[n].pk) for n in range(5)
    ]
