"""The admin in a real browser: the outcome list fits its box, details, retry, the banner, the pool page."""

import os
import signal

import pytest
from django.test import Client
from django.utils import timezone
from playwright.sync_api import expect

from relieve_app.models import MailOutcome, TaskEvent
from tests.e2e.conftest import wait_until
from tests.e2e.test_delivery import post

pytestmark = pytest.mark.django_db(transaction=True)

LONG = "A rather long subject line that a visitor typed in full, because they had a lot to say about it"


@pytest.fixture
def no_master(settings, tmp_path):
    settings.RELIEVE_SOCKET = str(tmp_path / "none.sock")


def outcomes(count=8, **fields):
    rows = []
    for n in range(count):
        defaults = {
            "emitter": f"someone.with.a.long.address.{n}@a-long-domain-name.example.org",
            "recipient": "owner@example.com",
            "subject": f"{LONG} ({n})",
            "body": "A message long enough to be sent along, with words.",
            "status": "failed" if n % 3 == 0 else "sent",
            "attempts": 5 if n % 3 == 0 else 1,
            "task_name": f"mail{n % 4}",
            "sent_at": None if n % 3 == 0 else timezone.now(),
            "error": "550 5.7.1 refused by sink (SMTP 550)" if n % 3 == 0 else "",
        }
        rows.append(MailOutcome.objects.create(**{**defaults, **fields}))
    return rows


@pytest.mark.parametrize("width", [1280, 1400])
def test_the_outcome_list_fits_its_box(admin_page, no_master, shot, width):
    outcomes()
    admin_page.set_viewport_size({"width": width, "height": 900})
    admin_page.goto("/admin/relieve_app/mailoutcome/")
    expect(admin_page.locator("#result_list")).to_be_visible()
    shot(f"{width}")
    box = admin_page.locator("#changelist .results")
    assert box.evaluate("e => e.scrollWidth <= e.clientWidth"), "the list scrolls sideways in its box"
    right = box.evaluate("e => e.getBoundingClientRect().right")
    last = admin_page.locator("#result_list thead th").last
    expect(last).to_contain_text("Sent")
    assert last.evaluate("e => e.getBoundingClientRect().right") <= right + 1  # the last column is shown
    expect(admin_page.locator("#content h1")).to_be_visible()
    expect(admin_page.locator("#site-name")).to_contain_text("relieve administration")
    assert admin_page.locator("select[name=action] option[value=delete_selected]").count() == 0


def test_details_show_the_times_and_offer_no_delete(admin_page, no_master, shot):
    row = outcomes(1)[0]
    TaskEvent.objects.create(task_name="mail0", event="error", payload={"code": 550}, outcome=row)
    admin_page.goto(f"/admin/relieve_app/mailoutcome/{row.pk}/change/")
    expect(admin_page.locator(".fieldBox.field-created_at")).to_contain_text("Created")
    expect(admin_page.locator(".fieldBox.field-updated_at")).to_be_visible()
    expect(admin_page.locator(".field-error")).to_contain_text("SMTP 550")
    assert admin_page.locator("a.deletelink").count() == 0
    shot("detail")
    admin_page.goto(f"/admin/relieve_app/taskevent/{row.events.get().pk}/change/")
    expect(admin_page.locator(".form-row.field-created_at")).to_be_visible()
    assert admin_page.locator("a.deletelink").count() == 0


def test_retry_without_a_master_says_so_and_the_banner_shows(admin_page, no_master, shot):
    failed = outcomes(3, status="failed")
    admin_page.goto("/admin/relieve_app/mailoutcome/")
    expect(admin_page.locator("#relieve-master-down")).to_be_visible()
    expect(admin_page.locator("#relieve-master-down")).to_contain_text("No relieve master is running")
    for row in failed:
        admin_page.check(f"input[name=_selected_action][value='{row.pk}']")
    admin_page.select_option("select[name=action]", "retry")
    admin_page.click("button[name=index]")
    expect(admin_page.locator(".messagelist")).to_contain_text("3 messages stay queued")
    expect(admin_page.locator(".messagelist")).to_contain_text("no relieve master is running")
    expect(admin_page.locator(".messagelist")).not_to_contain_text("sweep")
    shot("retried")
    assert set(MailOutcome.objects.values_list("status", flat=True)) == {"queued"}


def test_retry_hands_the_messages_to_a_running_master(admin_page, master, smtp_sink, shot):
    master.start(workers=1)
    failed = outcomes(2, status="failed")
    admin_page.goto("/admin/relieve_app/mailoutcome/")
    expect(admin_page.locator("#relieve-master-down")).to_be_hidden()
    admin_page.check("#action-toggle")
    admin_page.select_option("select[name=action]", "retry")
    admin_page.click("button[name=index]")
    expect(admin_page.locator(".messagelist")).to_contain_text("2 messages handed to the master")
    smtp_sink.wait_for(2, timeout=30)
    wait_until(lambda: all(MailOutcome.objects.filter(pk=r.pk, status="sent").exists() for r in failed))
    shot("handed")


def test_the_pool_page_follows_the_pool_live(admin_page, master, shot):
    master.env["RELIEVE_USAGE_INTERVAL"] = "0.5"
    master.start(workers=2, queues=["default=1"])
    admin_page.goto("/admin/")
    shot("index")
    admin_page.click(".app-relieve_app tr.model-pool a")  # the entry in the app's own section
    expect(admin_page.locator("#content h1")).to_have_text("Relieve pool")
    rows = admin_page.locator("#relieve-masters tr[data-child]")
    expect(rows).to_have_count(3)  # mail0, mail1 and default0
    expect(admin_page.locator("#relieve-master-down")).to_be_hidden()
    expect(admin_page.locator("tr[data-child=mail0] .field-memory")).to_contain_text("MiB")
    shot("start")

    web = Client()
    ids = [post(web, n) for n in range(6)]
    expect(admin_page.locator("[data-status=sent] b")).to_have_text("6")  # no reload: the page polls
    assert MailOutcome.objects.filter(pk__in=ids, status="sent").count() == 6

    victim = next(child for child in master.status()["children"] if child["name"] == "mail0")
    os.kill(victim["pid"], signal.SIGKILL)
    mail0 = admin_page.locator("tr[data-child=mail0]")
    expect(mail0.locator(".field-restarts")).to_have_text("1")
    expect(mail0.locator(".field-state")).to_have_text("running")
    expect(mail0.locator(".field-pid")).not_to_have_text(str(victim["pid"]))
    shot("after-kill")

    admin_page.reload()  # the charts are drawn by the server: a fresh page has the sends in them
    expect(admin_page.locator("#relieve-charts svg")).to_have_count(3)
    expect(admin_page.locator("#relieve-charts polyline[data-series=delivered]")).to_have_count(1)
    expect(admin_page.locator("#relieve-charts polyline[data-series=mail0]")).to_have_count(1)
    shot("charts")

    master.stop()
    expect(admin_page.locator("#relieve-master-down")).to_be_visible()  # live, without a reload
    expect(admin_page.locator("#relieve-masters")).to_be_empty()  # the banner says it, once
    shot("master-down")


def test_the_pool_page_shows_running_tasks_with_their_progress_and_how_full_queues_are(
    admin_page, master, settings, tmp_path, shot
):
    from tests.e2e.test_tasks import finished, running
    from tests.tasks_fixtures import basic, flow

    settings.RELIEVE_MAX_READY = {"mail": 50}
    master.env["RELIEVE_MAX_HELD"] = "2"
    master.start(workers=1, queues=["default=1"])
    gate = tmp_path / "gate"
    result = running(flow.progressing.enqueue(str(gate), 4))
    waiting = [basic.noop.enqueue() for _ in range(5)]  # behind it: 2 held, 3 left in the table
    admin_page.goto("/admin/")
    admin_page.click(".app-relieve_app tr.model-pool a")

    row = admin_page.locator(f"#relieve-tasks tr[data-task='{result.id}']")
    expect(row.locator("progress")).to_have_attribute("value", "4")
    expect(row).to_contain_text("4 of 4 (100%): step 4")
    expect(admin_page.locator("#relieve-fullness")).to_contain_text("Queue mail: 0 of at most 50 ready.")
    expect(admin_page.locator("#relieve-masters .master-line")).to_contain_text(
        "Queue default: 1 child (1 taking work), 2 queued here and more in the database (RELIEVE_MAX_HELD)"
    )
    expect(admin_page.locator("#relieve-masters .master-line")).to_contain_text(
        "0 waiting for their time (a retry's delay, run_after or a rate limit)."
    )
    shot("progress")
    gate.touch()
    assert finished(result).return_value == 4
    assert [finished(r).status for r in waiting] == ["SUCCESSFUL"] * 5
    expect(admin_page.locator("#relieve-tasks")).to_contain_text("No task is running.")


def test_the_pool_page_shows_a_queue_grown_within_its_range_and_its_new_child(
    admin_page, master, tmp_path, shot
):
    from tests.e2e.test_tasks import finished
    from tests.tasks_fixtures import basic

    master.start(workers=1, queues=["default=1-2"])
    release = tmp_path / "release"
    marks = [tmp_path / f"started{n}" for n in range(2)]
    results = [basic.wait_for_file.enqueue(str(release), 60.0, str(mark)) for mark in marks]
    results.append(basic.wait_for_file.enqueue(str(release), 60.0))  # waits: the queue is at its most
    wait_until(lambda: all(mark.exists() for mark in marks), message="two tasks running at once")
    admin_page.goto("/admin/")
    admin_page.click(".app-relieve_app tr.model-pool a")

    expect(admin_page.locator("#relieve-masters .master-line")).to_contain_text(
        "Queue default: 2 children of 1-2 (2 taking work), 1 queued, 2 running."
    )
    expect(admin_page.locator("#relieve-masters .master-line")).to_contain_text(
        "Queue mail: 1 child (1 taking work)"
    )
    expect(admin_page.locator("#relieve-masters table")).to_contain_text("default1")
    shot("grown")
    release.touch()
    assert [finished(result).status for result in results] == ["SUCCESSFUL"] * 3
