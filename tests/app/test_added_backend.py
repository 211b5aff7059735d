"""A project that only installs the app gets relieve's backend for the contact mail, beside its own TASKS;
one that names the backend itself gets the contact mail on the queues it has."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from relieve_app.checks import check_contact_mail_queue
from relieve_app.conf import ADDED_ALIAS, BACKEND, add_backend_if_missing, backend_alias, contact_mail_queue

ROOT = Path(__file__).resolve().parents[2]
IMMEDIATE = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}


def test_a_project_without_a_relieve_backend_gets_one_added(settings):
    settings.TASKS = IMMEDIATE
    add_backend_if_missing()
    assert settings.TASKS["default"] == IMMEDIATE["default"]  # the project's own stays as it was
    assert settings.TASKS[ADDED_ALIAS] == {"BACKEND": BACKEND, "QUEUES": ["default", "mail"]}
    assert backend_alias() == ADDED_ALIAS
    assert contact_mail_queue() == "mail"


def test_a_project_that_names_the_backend_keeps_its_own_alias(settings):
    settings.TASKS = {"jobs": {"BACKEND": BACKEND, "QUEUES": ["mail"]}}
    add_backend_if_missing()
    assert list(settings.TASKS) == ["jobs"]
    assert backend_alias() == "jobs"


@pytest.mark.parametrize(
    ("queues", "expected"),
    [
        (None, "default"),  # Django's own default: the one queue "default"
        ([], "default"),  # runrelieve serves "default" then
        (["default"], "default"),
        (["bulk", "mail"], "mail"),
        (["bulk", "default"], "default"),
        (["bulk", "reports"], "bulk"),
    ],
)
def test_the_contact_mail_goes_on_a_queue_the_project_has(settings, queues, expected):
    params = {"BACKEND": BACKEND} if queues is None else {"BACKEND": BACKEND, "QUEUES": queues}
    settings.TASKS = {"default": params}
    assert contact_mail_queue() == expected
    assert check_contact_mail_queue(None) == []


def test_a_queue_named_on_purpose_is_taken_when_the_backend_has_it(settings):
    settings.TASKS = {"default": {"BACKEND": BACKEND, "QUEUES": ["default", "mail", "contact"]}}
    settings.CONTACT_MAIL_QUEUE = "contact"
    assert contact_mail_queue() == "contact"
    assert check_contact_mail_queue(None) == []


def test_a_queue_named_on_purpose_that_the_backend_lacks_is_an_error_naming_the_fix(settings):
    settings.TASKS = {"default": {"BACKEND": BACKEND, "QUEUES": ["default"]}}
    settings.CONTACT_MAIL_QUEUE = "contact"

    [error] = check_contact_mail_queue(None)

    assert error.id == "relieve_app.E004" and error.is_serious()
    assert "CONTACT_MAIL_QUEUE = 'contact' is not a queue of TASKS['default']" in error.msg
    assert "Add 'contact' to TASKS['default']['QUEUES']" in error.hint
    assert contact_mail_queue() == "default"  # the task still imports, on a queue that exists


def manage(*argv, **env):
    ours = {"DATABASE_URL", "EMAIL_URL", "DEBUG", "SECRET_KEY", "TASK_QUEUES", "CONTACT_MAIL_QUEUE"}
    clean = {key: value for key, value in os.environ.items() if key not in ours}
    return subprocess.run(
        [sys.executable, "manage.py", *argv],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "project.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_commands_run_when_the_projects_tasks_list_no_mail_queue():
    """It used to end every command with `InvalidTask: Queue 'mail' is not valid`, at admin autodiscovery."""
    checked = manage("check", TASK_QUEUES="default")
    queue = manage(
        "shell",
        "-c",
        "from relieve_app.contact.mailtask import send_contact_mail as t; print(t.queue_name)",
        TASK_QUEUES="default",
    )

    assert checked.returncode == 0, checked.stderr
    assert "Traceback" not in checked.stderr
    assert queue.stdout.splitlines()[-1] == "default", queue.stderr
