"""RELIEVE_SCHEDULE's system check names the entry and what is wrong with it."""

import pytest

from relieve_app.tasks.schedule.checks import check_schedule
from relieve_app.tasks.schedule.entries import load

GOOD = {"task": "tests.tasks_fixtures.basic.noop", "every": "10m"}


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ({"task": "tests.tasks_fixtures.basic.noop", "cron": "1 2 3"}, "five fields"),
        ({"task": "tests.tasks_fixtures.basic.noop", "cron": "99 * * * *"}, "cron = '99 * * * *'"),
        ({"task": "tests.tasks_fixtures.basic.noop"}, "exactly one of 'cron'"),
        ({"task": "tests.tasks_fixtures.basic.noop", "every": 5, "cron": "* * * * *"}, "exactly one"),
        ({"task": "os.path.join", "every": 5}, "is not a task: decorate it with @task"),
        ({"task": "nowhere.at_all", "every": 5}, "cannot be imported"),
        ({**GOOD, "args": [object()]}, "must be JSON"),
        ({**GOOD, "kwargs": {"when": {1, 2}}}, "must be JSON"),
        ({**GOOD, "timezone": "Mars/Olympus"}, "'Mars/Olympus' is not a known time zone"),
        ({**GOOD, "catch_up": "yes"}, "catch_up = 'yes' must be True or False"),
        ({**GOOD, "every_day": True}, "unknown keys ['every_day']"),
    ],
)
def test_a_bad_entry_is_a_check_error_naming_it(settings, spec, words):
    settings.RELIEVE_SCHEDULE = {"fine": GOOD, "broken": spec}

    [error] = check_schedule(None)

    assert error.id == "relieve_app.E020"
    assert error.msg.startswith("RELIEVE_SCHEDULE['broken']: ")
    assert words in error.msg
    assert list(load()) == ["fine"]  # the good entry still runs


def test_a_schedule_that_is_not_a_dict_is_one_error(settings):
    settings.RELIEVE_SCHEDULE = ["reports"]
    [error] = check_schedule(None)
    assert "must be a dict" in error.msg and load() == {}


def test_an_entry_defaults_to_the_project_time_zone_and_no_catch_up(settings):
    settings.TIME_ZONE = "Europe/Paris"
    settings.RELIEVE_SCHEDULE = {"reports": {"task": "tests.tasks_fixtures.basic.noop", "cron": "15 3 * * *"}}
    entry = load()["reports"]
    assert (entry.zone, entry.catch_up, entry.enabled, entry.limit) == ("Europe/Paris", False, True, 1)
    assert check_schedule(None) == []
