"""Task results in the admin: filters, search, a detail page with the whole story, and retry."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from relieve_app.models import MailOutcome, TaskEvent, TaskRecord
from tests.fake_master import acknowledge_each

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:relieve_app_taskrecord_changelist")
TRACEBACK = 'Traceback (most recent call last):\n  File "tasks.py", line 3\nValueError: <bad & worse>'


def record(status="READY", path="tests.tasks_fixtures.basic.add", queue="default", **fields):
    return TaskRecord.objects.create(
        task_path=path, queue_name=queue, backend="default", status=status, **fields
    )


def test_filters_and_search(admin_client):
    record("FAILED", errors=[{"exception_class_path": "builtins.ValueError", "traceback": TRACEBACK}])
    record("SUCCESSFUL", path="tests.tasks_fixtures.basic.noop", args=[{"customer": "ada-lovelace"}])
    record("READY", queue="mail", path="relieve_app.contact.mailtask.send_contact_mail")

    def count(**query):
        response = admin_client.get(CHANGELIST, query)
        assert response.status_code == 200
        return response.context["cl"].result_count

    assert count() == 3
    assert count(status__exact="FAILED") == 1
    assert count(task_path__exact="tests.tasks_fixtures.basic.noop") == 1
    assert count(queue_name__exact="mail") == 1
    assert count(q="ada-lovelace") == 1
    assert count(q="ValueError") == 1


def test_the_filters_offer_each_value_read_from_its_index_and_no_whole_table_read(admin_client):
    for queue in ["mail", "default", "mail", "zeta"]:
        record(queue=queue, path=f"app.tasks.{queue}")
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    offered = {
        spec.title: [choice["display"] for choice in spec.choices(response.context["cl"])]
        for spec in response.context["cl"].filter_specs
    }
    assert offered["queue"] == ["All", "default", "mail", "zeta"]
    assert offered["task"] == ["All", "app.tasks.default", "app.tasks.mail", "app.tasks.zeta"]
    sql = " ".join(query["sql"] for query in queries.captured_queries)
    assert "DISTINCT" not in sql  # neither a filter's values nor a date hierarchy scan the table
    assert sql.count("COUNT(") == 1  # the page's, not a second one of the whole table


def test_a_large_list_count_is_estimated_on_postgresql_and_exact_on_sqlite(admin_client):
    TaskRecord.objects.bulk_create(
        TaskRecord(task_path="app.tasks.job", queue_name="default", backend="default") for _ in range(12_000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE relieve_app_taskrecord" if connection.vendor == "postgresql" else "ANALYZE")
    response = admin_client.get(CHANGELIST)
    cl = response.context["cl"]
    if connection.vendor == "postgresql":
        assert cl.paginator.estimated and abs(cl.result_count - 12_000) < 1_200
        assert "about</span> " in response.content.decode()
    else:
        assert not cl.paginator.estimated and cl.result_count == 12_000
        assert "about</span>" not in response.content.decode()
    assert admin_client.get(CHANGELIST, {"status__exact": "FAILED"}).context["cl"].result_count == 0


def test_detail_shows_arguments_return_value_errors_attempts_and_events(admin_client):
    row = record(
        "SUCCESSFUL",
        args=[2, {"note": "<script>"}],
        kwargs={"b": 3},
        return_value={"sum": 5},
        worker_ids=["default0", "default1"],
        errors=[{"exception_class_path": "builtins.TimeoutError", "message": "slow", "traceback": TRACEBACK}],
    )
    TaskEvent.objects.create(
        task_name="default1", event="timeout", payload={"message": "slow"}, task_result=row
    )
    outcome = MailOutcome.objects.create(
        emitter="a@example.org", recipient="me@example.com", subject="s", body="b", task_result=row
    )

    response = admin_client.get(reverse("admin:relieve_app_taskrecord_change", args=[row.pk]))

    content = response.content.decode()
    assert response.status_code == 200
    assert "&quot;note&quot;: &quot;&lt;script&gt;&quot;" in content  # shown, escaped
    assert "&quot;sum&quot;: 5" in content
    assert "builtins.TimeoutError" in content and "ValueError: &lt;bad &amp; worse&gt;" in content
    assert "default0" in content and "default1" in content and "timeout" in content
    assert reverse("admin:relieve_app_mailoutcome_change", args=[outcome.pk]) in content
    assert 'name="task_path"' not in content  # read-only
    assert admin_client.get(reverse("admin:relieve_app_taskrecord_add")).status_code == 403


def test_a_mail_outcome_links_to_its_task_result(admin_client):
    row = record("RUNNING", queue="mail", path="relieve_app.contact.mailtask.send_contact_mail")
    outcome = MailOutcome.objects.create(
        emitter="a@example.org", recipient="me@example.com", subject="s", body="b", task_result=row
    )
    response = admin_client.get(reverse("admin:relieve_app_mailoutcome_change", args=[outcome.pk]))
    assert reverse("admin:relieve_app_taskrecord_change", args=[row.pk]) in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_retry_runs_failed_tasks_again_as_new_ones(admin_client, fake_master):
    master = fake_master(acknowledge_each)  # every task on one connection, as the master
    failed = record("FAILED", args=[1, 2], priority=4, timeout=3.0, errors=[{"exception_class_path": "x"}])
    mail = record(
        "FAILED", queue="mail", path="relieve_app.contact.mailtask.send_contact_mail", args=[{"subject": "s"}]
    )
    outcome = MailOutcome.objects.create(
        emitter="a@example.org",
        recipient="me@example.com",
        subject="s",
        body="b",
        status="failed",
        attempts=3,
        error="550",
        task_result=mail,
    )
    done, running = record("SUCCESSFUL"), record("RUNNING")

    data = {"action": "retry", "_selected_action": [failed.pk, mail.pk, done.pk, running.pk]}
    response = admin_client.post(CHANGELIST, data, follow=True)

    assert response.status_code == 200
    new = {r.task_path: r for r in TaskRecord.objects.filter(status="READY")}
    again, mail_again = new[failed.task_path], new[mail.task_path]
    assert (again.args, again.priority, again.timeout) == ([1, 2], 4, 3.0)
    assert (mail_again.args, mail_again.queue_name) == ([{"subject": "s"}], "mail")
    assert TaskRecord.objects.get(pk=failed.pk).status == "FAILED"  # the old row stays as it was
    outcome.refresh_from_db()
    assert (outcome.status, outcome.attempts, outcome.error) == ("queued", 0, "")
    assert outcome.task_result == mail_again
    assert sorted(r["args"]["id"] for r in master.requests if r["op"] == "submit") == sorted(
        [again.pk, mail_again.pk]
    )
    notes = [str(m) for m in response.context["messages"]]
    assert "2 tasks not failed left alone." in notes and "2 tasks handed to the master." in notes
