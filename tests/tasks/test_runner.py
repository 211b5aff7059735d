"""The child's side, run in this process: what run(job) answers for each way a task can end."""

import os
import subprocess
import sys

import pytest

from relieve_app.tasks.runner import Runner

pytestmark = pytest.mark.django_db


def job(path, *args, attempt=1, takes_context=False, **kwargs):
    return {
        "id": 12,
        "path": path,
        "args": list(args),
        "kwargs": kwargs,
        "takes_context": takes_context,
        "backend": "default",
        "worker_ids": [f"default{n}" for n in range(attempt)],
        "attempt": attempt,
        "enqueued_at": "2026-01-01T10:00:00+00:00",
        "started_at": "2026-01-01T10:00:01+00:00",
        "last_attempted_at": "2026-01-01T10:00:01+00:00",
    }


def test_a_value_comes_back_as_json():
    assert Runner().run(job("tests.tasks_fixtures.basic.add", 2, b=5)) == {"ok": True, "value": 7}


def test_an_async_task_gets_its_context():
    answer = Runner().run(
        job("tests.tasks_fixtures.contextual.async_attempt", 0, attempt=3, takes_context=True)
    )
    assert answer == {"ok": True, "value": {"attempt": 3, "id": "12"}}


def test_a_raise_is_the_tasks_error_with_class_path_and_traceback():
    answer = Runner().run(job("tests.tasks_fixtures.basic.fail", "nope"))
    assert answer["ok"] is False and answer["retry"] is False
    assert answer["error"]["exception_class_path"] == "builtins.ValueError"
    assert answer["error"]["message"] == "nope"
    assert "tests/tasks_fixtures/basic.py" in answer["error"]["traceback"]


def test_a_value_that_is_not_json_is_an_error_naming_the_task():
    answer = Runner().run(job("tests.tasks_fixtures.basic.not_json"))
    assert answer["error"]["exception_class_path"] == "builtins.TypeError"
    assert (
        "tests.tasks_fixtures.basic.not_json returned a value that is not JSON" in answer["error"]["message"]
    )


@pytest.mark.parametrize(
    ("path", "says"),
    [
        ("tests.tasks_fixtures.broken.job", "No module named 'a_module_that_does_not_exist'"),
        ("tests.tasks_fixtures.nowhere.job", "No module named 'tests.tasks_fixtures.nowhere'"),
        ("tests.tasks_fixtures.basic.missing", "has no attribute"),
        ("tests.tasks_fixtures.basic.os", "is not a task"),
        ("not a path", "cannot be imported"),
    ],
)
def test_a_task_that_cannot_import_is_that_tasks_error_only(path, says):
    runner = Runner()
    answer = runner.run(job(path))
    assert answer["ok"] is False and answer["retry"] is False
    assert answer["error"]["exception_class_path"] == "relieve_app.tasks.runner.TaskNotFound"
    assert path in answer["error"]["message"] and says in answer["error"]["traceback"]
    assert runner.run(job("tests.tasks_fixtures.basic.add", 1, 1))["value"] == 2  # the runner goes on


def test_retry_later_asks_for_another_attempt_with_its_delay():
    answer = Runner().run(job("tests.tasks_fixtures.contextual.flaky", 3, attempt=1, takes_context=True))
    assert answer["retry"] is True and answer["delay"] == 0.1
    assert answer["error"]["exception_class_path"] == "relieve_app.retry.RetryLater"
    done = Runner().run(job("tests.tasks_fixtures.contextual.flaky", 3, attempt=3, takes_context=True))
    assert done == {"ok": True, "value": 3}


def test_a_child_without_django_settings_module_says_so_and_guesses_no_project():
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    code = "from relieve_app.tasks.runner import Runner; Runner()"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "ImproperlyConfigured: DJANGO_SETTINGS_MODULE is not set" in done.stderr


def test_an_exception_named_in_retry_on_asks_for_a_jittered_retry(tmp_path, settings):
    from relieve_app.tasks.runner import Runner

    settings.RELIEVE_MAX_RETRY_DELAY = 0.3
    job = {
        "id": 1,
        "path": "tests.tasks_fixtures.retrying.flaky",
        "args": [str(tmp_path / "n"), 5],
        "attempt": 4,
    }
    answer = Runner().run(job)
    assert answer["retry"] is True and 0 <= answer["delay"] <= 0.3  # 0.05 * 2**3 = 0.4, capped
    assert answer["error"]["exception_class_path"] == "builtins.ConnectionRefusedError"

    other = Runner().run(
        {**job, "path": "tests.tasks_fixtures.retrying.wrong_kind", "args": [str(tmp_path / "m")]}
    )
    assert other["retry"] is False and other["error"]["exception_class_path"] == "builtins.ValueError"


def test_backoff_is_full_jitter_under_a_doubling_capped_ceiling():
    from relieve_app.tasks.retry import backoff

    ceilings = [backoff(n, 1.0, 10.0, draw=lambda low, high: (low, high)) for n in range(1, 7)]
    assert ceilings == [(0, 1.0), (0, 2.0), (0, 4.0), (0, 8.0), (0, 10.0), (0, 10.0)]


def test_retry_on_must_name_exception_classes():
    from dataclasses import replace

    from django.tasks.exceptions import InvalidTask

    from tests.tasks_fixtures.retrying import flaky

    with pytest.raises(InvalidTask, match=r"retry_on: 'nowhere\.Error' cannot be imported"):
        replace(flaky, retry_on=("nowhere.Error",))
    with pytest.raises(InvalidTask, match="is not an exception class"):
        replace(flaky, retry_on=(int,))
    with pytest.raises(InvalidTask, match="retry_delay"):
        replace(flaky, retry_delay=-1)
