"""The metrics/ view and relievestatus --prometheus: token, 404 and 401, and a body Prometheus parses;
the sample alert rules and dashboard parse and speak only of metrics that exist."""

import json
import re
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from relieve_app.models import RelieveMaster, TaskRecord

pytestmark = pytest.mark.django_db

URL = "/contact/metrics/"
TOKEN = "s3cret-token-for-the-scraper"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "monitoring"


@pytest.fixture
def rows(master_socket):
    now = timezone.now()
    add = "tests.tasks_fixtures.basic.add"
    TaskRecord.objects.create(task_path=add, queue_name="mail", backend="default")
    TaskRecord.objects.create(
        task_path=add, queue_name="mail", backend="default", enqueued_at=now - timedelta(minutes=5)
    )
    for seconds in (0.02, 0.3, 7):
        TaskRecord.objects.create(
            task_path=add,
            queue_name="default",
            backend="default",
            status="SUCCESSFUL",
            last_attempted_at=now - timedelta(seconds=seconds),
            finished_at=now,
        )
    RelieveMaster.objects.create(
        id="h:1:1", host="h", pid=1, started_at=now, heartbeat_at=now, expires_at=now + timedelta(minutes=1)
    )


def families(text):
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_unset_token_hides_the_view(client, settings):
    settings.RELIEVE_METRICS_TOKEN = None
    assert client.get(URL, HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer wrong-token-of-the-same-size", f"Basic {TOKEN}", "Bearer"])
def test_a_missing_or_wrong_token_is_401(client, settings, header):
    settings.RELIEVE_METRICS_TOKEN = TOKEN
    extra = {} if header is None else {"HTTP_AUTHORIZATION": header}
    response = client.get(URL, **extra)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_the_right_token_gets_metrics_prometheus_parses(client, settings, rows):
    settings.RELIEVE_METRICS_TOKEN = TOKEN
    settings.RELIEVE_MAX_READY = {"mail": 100}
    response = client.get(URL, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    found = families(response.content.decode())
    tasks = {(s.labels["queue"], s.labels["status"]): s.value for s in found["relieve_tasks"].samples}
    assert tasks == {("mail", "READY"): 2, ("default", "SUCCESSFUL"): 3}
    [oldest] = found["relieve_oldest_ready_age_seconds"].samples
    assert oldest.labels == {"queue": "mail"} and 299 < oldest.value < 400
    buckets = {
        s.labels["le"]: s.value
        for s in found["relieve_task_duration_seconds"].samples
        if s.name.endswith("_bucket")
    }
    assert (buckets["0.05"], buckets["0.5"], buckets["5.0"], buckets["10.0"], buckets["+Inf"]) == (
        1,
        2,
        2,
        3,
        3,
    )
    assert found["relieve_masters_live"].samples[0].value == 1
    assert found["relieve_queue_ready_limit"].samples[0].value == 100
    assert found["relieve_master_up"].samples[0].value == 0  # no master on this test's socket


def test_relievestatus_prints_the_same_metrics(rows):
    out = StringIO()
    call_command("relievestatus", "--prometheus", "--timeout", "0.1", stdout=out)
    found = families(out.getvalue())
    assert {"relieve_tasks", "relieve_oldest_ready_age_seconds", "relieve_task_duration_seconds"} <= set(
        found
    )


def test_the_alert_rules_parse_and_cover_a_stuck_queue_a_failing_task_and_no_master():
    rules = yaml.safe_load((EXAMPLES / "relieve-alerts.yml").read_text())
    alerts = {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}
    expected = {"RelieveQueueStuck", "RelieveQueueAtItsMost", "RelieveTaskFailing", "RelieveNoMaster"}
    assert expected <= set(alerts)
    for rule in alerts.values():
        assert rule["expr"] and rule["annotations"]["summary"]
        assert metric_names(rule["expr"]) <= EXPORTED, rule["alert"]


def test_the_dashboard_parses_and_charts_only_exported_metrics():
    dashboard = json.loads((EXAMPLES / "relieve-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(exprs) >= 8
    for expr in exprs:
        assert metric_names(expr) <= EXPORTED, expr


EXPORTED = {
    "relieve_tasks",
    "relieve_oldest_ready_age_seconds",
    "relieve_task_duration_seconds_bucket",
    "relieve_masters_live",
    "relieve_queue_ready_limit",
    "relieve_master_up",
    "relieve_children",
    "relieve_queue_min_children",
    "relieve_queue_max_children",
    "relieve_child_restarts_total",
    "relieve_child_resident_memory_bytes",
}


def metric_names(expr):
    return set(re.findall(r"\brelieve_[a-z_]+\b", expr))
