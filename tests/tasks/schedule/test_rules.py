"""Slots of a rule: `every` aligned on the epoch, cron in its zone, and the rule at a change of the clock."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from relieve_app.tasks.schedule.rules import Cron, Every, RuleError, due, every_seconds

PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    ("value", "seconds"), [(90, 90), (2.5, 2.5), ("90s", 90), ("10m", 600), ("2h", 7200)]
)
def test_every_reads_numbers_and_units(value, seconds):
    assert every_seconds(value) == seconds


@pytest.mark.parametrize("value", [0, -5, "10x", "", True, None, "m", float("inf")])
def test_every_refuses_what_is_not_a_period(value):
    with pytest.raises(RuleError, match="every"):
        every_seconds(value)


def test_every_slots_are_multiples_of_the_period_so_every_master_finds_the_same():
    now = datetime(2026, 1, 1, 12, 0, 5, 300000, tzinfo=UTC)
    slots = due(Every(2), now - timedelta(seconds=6), now, limit=10)
    assert [slot.second for slot in slots] == [0, 2, 4]
    assert due(Every(2), now - timedelta(seconds=6), now, limit=1) == [slots[-1]]


def test_cron_slots_follow_the_wall_clock_of_their_zone():
    rule = Cron("15 3 * * *", PARIS)
    after = datetime(2026, 1, 1, tzinfo=UTC)
    slots = due(rule, after, after + timedelta(days=3), limit=10)
    assert [slot.astimezone(PARIS).strftime("%d %H:%M") for slot in slots] == [
        "01 03:15",
        "02 03:15",
        "03 03:15",
    ]
    assert rule.next_after(after) == slots[0]


def test_a_time_the_clock_skips_runs_once_just_after_the_jump():
    rule = Cron("30 2 * * *", PARIS)  # 2026-03-29: 02:00 -> 03:00 in Paris
    slots = due(rule, datetime(2026, 3, 28, 12, tzinfo=UTC), datetime(2026, 3, 30, 12, tzinfo=UTC), 10)
    assert [slot.astimezone(PARIS).isoformat() for slot in slots] == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]


def test_a_time_the_clock_passes_twice_runs_once_at_the_first_pass():
    rule = Cron("30 2 * * *", PARIS)  # 2026-10-25: 03:00 -> 02:00 in Paris
    slots = due(rule, datetime(2026, 10, 24, 12, tzinfo=UTC), datetime(2026, 10, 26, 12, tzinfo=UTC), 10)
    assert [slot.astimezone(PARIS).isoformat() for slot in slots] == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-26T02:30:00+01:00",
    ]


@pytest.mark.parametrize("expression", ["* * * *", "0 0 0 * * *", "61 * * * *", "x * * * *", 5])
def test_a_cron_rule_must_be_five_valid_fields(expression):
    with pytest.raises(RuleError, match="cron"):
        Cron(expression, PARIS)
