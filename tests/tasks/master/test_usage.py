"""Usage reports: the last one per child for the status, and samples that do not outlive RETAIN."""

from datetime import timedelta

import pytest
from django.utils import timezone

from relieve_app.models import UsageSample
from relieve_app.tasks.master.usage import RETAIN, UsageBook, add_sample, valid

REPORT = {"cpu": 1.5, "cpu_percent": 2.0, "memory": 50 * 2**20, "pid": 4321, "uptime": 12.0}


@pytest.mark.django_db
def test_writing_a_sample_deletes_those_past_retain():
    now = timezone.now()
    add_sample("mail0", REPORT, at=now - RETAIN - timedelta(minutes=1))
    add_sample("mail0", REPORT, at=now - RETAIN + timedelta(minutes=1))
    add_sample("mail1", REPORT, at=now)
    kept = list(UsageSample.objects.values_list("task_name", "memory", "pid"))
    assert kept == [("mail0", 50 * 2**20, 4321), ("mail1", 50 * 2**20, 4321)]


def test_the_book_forgets_a_report_of_an_earlier_process():
    book = UsageBook(clock=lambda: 100.0)
    book.note("mail0", REPORT)
    assert book.of("mail0", 4321)["memory"] == 50 * 2**20
    assert book.of("mail0", 9999) is None  # restarted since: that memory was another process's
    assert book.of("mail1", 4321) is None


def test_only_a_monitor_shaped_report_is_kept():
    assert valid(REPORT)
    for bad in (
        None,
        [],
        {},
        {**REPORT, "memory": "lots"},
        {**REPORT, "pid": True},
        {**REPORT, "memory": -1},
    ):
        assert not valid(bad)
    book = UsageBook()
    book.note("mail0", {"memory": "lots"})
    assert book.of("mail0", None) is None
