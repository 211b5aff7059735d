"""The admin's relieve pages at a laptop's 1280x800 and a phone's 390x844: nothing cut off, nothing
pushed sideways, charts readable, and the master-down banner where an admin lands."""

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from relieve_app.models import MailOutcome, RelieveMaster, TaskEvent, TaskRecord, UsageSample

pytestmark = pytest.mark.django_db(transaction=True)

LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
CHILDREN = [f"mail{n}" for n in range(8)]  # the default: eight children in the mail queue


@pytest.fixture
def no_master(settings, tmp_path):
    settings.RELIEVE_SOCKET = str(tmp_path / "none.sock")


@pytest.fixture
def busy_day():
    """An hour of usage from eight children, mail sent and failed, and another task's failed attempts."""
    now = timezone.now()
    UsageSample.objects.bulk_create(
        UsageSample(
            task_name=name,
            pid=4100 + index,
            memory=(45 + index) * 2**20 + minute * 4096,
            cpu_percent=0.4,
            created_at=now - timedelta(minutes=60 - minute),
        )
        for index, name in enumerate(CHILDREN)
        for minute in range(0, 60, 5)
    )
    for n in range(3):
        MailOutcome.objects.create(
            emitter=f"someone.with.a.long.address.{n}@a-long-domain-name.example.org",
            recipient="owner@example.com",
            subject=f"A rather long subject line that a visitor typed in full, because ({n})",
            body="A message long enough to be sent along.",
            status="sent",
            attempts=1,
            sent_at=now,
        )
    report = TaskRecord.objects.create(
        task_path="reports.tasks.a_task_with_a_rather_long_module_path.build_the_monthly_report",
        queue_name="default",
        backend="default",
        status=TaskRecord.Status.FAILED,
        errors=[{"exception_class_path": "builtins.ValueError", "message": "no", "traceback": ""}],
        worker_ids=["default0"] * 12,
        finished_at=now,
    )
    TaskEvent.objects.bulk_create(
        TaskEvent(task_name="default0", event="error", payload={"message": "no"}, task_result=report)
        for _ in range(12)
    )
    for n in range(2):
        RelieveMaster.objects.create(
            id=f"a-rather-long-host-name-{n}.example.internal:41{n}7:20261204T101112.131415Z",
            host=f"a-rather-long-host-name-{n}.example.internal",
            pid=4107 + n,
            started_at=now - timedelta(hours=2),
            heartbeat_at=now,
            expires_at=now + timedelta(seconds=30),
            children=8,
            queues=["mail", "default"],
        )
    return now


def fits_sideways(page):
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def cut_off_cells(page):
    """Cells of the result list whose content is wider than they are, or clipped at their right."""
    return page.evaluate(
        """() => {
        const box = document.querySelector('#changelist .results').getBoundingClientRect();
        return [...document.querySelectorAll('#result_list th, #result_list td')]
          .filter(c => c.scrollWidth > c.clientWidth + 1 || c.getBoundingClientRect().right > box.right + 1)
          .map(c => c.textContent.trim());
        }"""
    )


def mid_word_breaks(page, selector):
    """Where a cell's text goes to a new line other than after its "@" or a dot (a-long-domain is a word)."""
    return page.evaluate(
        """(selector) => {
        const bad = [];
        for (const cell of document.querySelectorAll(selector)) {
          const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
          const chars = [];
          for (let node = walker.nextNode(); node; node = walker.nextNode())
            for (let i = 0; i < node.length; i++) {
              const range = document.createRange();
              range.setStart(node, i); range.setEnd(node, i + 1);
              const rect = range.getBoundingClientRect();
              if (rect.width) chars.push([node.data[i], rect.top]);
            }
          for (let i = 1; i < chars.length; i++)
            if (chars[i][1] > chars[i - 1][1] + 2 && !'@.'.includes(chars[i - 1][0]))
              bad.push(cell.textContent.trim().slice(0, 40) + ' at ' + i);
        }
        return bad;
        }""",
        selector,
    )


def boxes_overlap(a, b):
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and (b["y"] < a["y"] + a["height"])
    )


@pytest.mark.parametrize(
    "url",
    [
        "/admin/relieve_app/taskrecord/",
        "/admin/relieve_app/relievemaster/",
        "/admin/relieve_app/taskevent/",
        "/admin/relieve_app/usagesample/",
        "/admin/relieve_app/mailoutcome/",
    ],
    ids=["tasks", "masters", "events", "usage", "outcomes"],
)
def test_the_lists_show_every_column_at_1280(admin_page, no_master, busy_day, shot, url):
    admin_page.set_viewport_size(LAPTOP)
    admin_page.goto(url)
    expect(admin_page.locator("#result_list")).to_be_visible()
    shot("list")
    assert cut_off_cells(admin_page) == []


def test_addresses_wrap_only_between_their_parts(admin_page, no_master, busy_day, shot):
    admin_page.set_viewport_size(LAPTOP)
    admin_page.goto("/admin/relieve_app/mailoutcome/")
    senders = "#result_list tbody td:nth-child(3)"  # after the checkbox and the status
    expect(admin_page.locator(senders).first).to_contain_text("@a-long-domain-name.example.org")
    assert mid_word_breaks(admin_page, senders) == []


def test_usage_samples_read_in_mib_newest_first(admin_page, no_master, busy_day):
    admin_page.set_viewport_size(LAPTOP)
    admin_page.goto("/admin/relieve_app/usagesample/")
    first = admin_page.locator("#result_list tbody tr").first
    expect(first.locator("td.field-memory_mib")).to_have_text("52.2 MiB")  # mail7's last sample
    newest, older = (
        UsageSample.objects.order_by("-created_at")[:1].get(),
        UsageSample.objects.earliest("created_at"),
    )
    assert newest.created_at > older.created_at
    assert str(newest.pid) in first.inner_text()


@pytest.mark.parametrize("size", [LAPTOP, PHONE], ids=["1280", "390"])
def test_the_admin_index_shows_the_master_down_banner(admin_page, no_master, shot, size):
    admin_page.set_viewport_size(size)
    admin_page.goto("/admin/")
    expect(admin_page.locator("#content h1")).to_be_visible()
    shot("index")
    banner = admin_page.locator("#relieve-master-down")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("No relieve master is running")
    assert fits_sideways(admin_page)


@pytest.mark.parametrize("size", [LAPTOP, PHONE], ids=["1280", "390"])
def test_the_pool_page_without_a_master_says_it_once(admin_page, no_master, shot, size):
    admin_page.set_viewport_size(size)
    admin_page.goto("/admin/relieve_app/pool/")
    expect(admin_page.locator("#relieve-master-down")).to_be_visible()
    shot("pool-down")
    expect(admin_page.locator("#relieve-no-master")).to_have_count(0)
    assert "Errno" not in admin_page.locator("#content").inner_text()
    assert fits_sideways(admin_page)


def test_the_pool_page_says_which_tasks_it_counts(admin_page, no_master, busy_day, shot):
    admin_page.set_viewport_size(LAPTOP)
    admin_page.goto("/admin/relieve_app/pool/")
    messages = admin_page.locator("#relieve-charts svg").first
    expect(messages.locator(".chart-title")).to_contain_text("Contact mail")
    expect(admin_page.locator("#relieve-pool h2", has_text="Contact mail")).to_have_count(1)
    shot("charts")


@pytest.mark.parametrize("size", [LAPTOP, PHONE], ids=["1280", "390"])
def test_the_pool_page_fits_and_its_charts_read(admin_page, master, busy_day, shot, size):
    master.start(workers=2, queues=["default=1"])
    admin_page.set_viewport_size(size)
    admin_page.goto("/admin/relieve_app/pool/")
    expect(admin_page.locator("#relieve-masters tr[data-child]")).to_have_count(3)
    shot("pool")
    assert fits_sideways(admin_page), "the pool page is wider than the screen"
    charts = admin_page.locator("#relieve-charts svg")
    expect(charts).to_have_count(3)
    for index in range(3):
        chart = charts.nth(index)
        scale = chart.evaluate("e => e.getBoundingClientRect().width / e.viewBox.baseVal.width")
        assert 11 * scale >= 9, f"chart {index}: its 11px text is drawn {11 * scale:.1f}px tall"
    memory = charts.nth(2)
    title = memory.locator(".chart-title").bounding_box()
    legend = [memory.locator(f"[data-legend='{name}']").bounding_box() for name in CHILDREN]
    assert all(legend), "each child has its legend entry"
    assert [box for box in legend if boxes_overlap(box, title)] == [], "the legend covers the title"
    svg = memory.bounding_box()
    assert all(
        svg["x"] <= box["x"] and box["x"] + box["width"] <= svg["x"] + svg["width"] + 1 for box in legend
    )
    for a, b in itertools.pairwise(legend):
        assert not boxes_overlap(a, b)


def test_the_favicon_is_served_not_a_404(page):
    answer = page.goto("/favicon.ico")
    assert answer.ok, answer.status
    assert answer.headers["content-type"].startswith("image/")
