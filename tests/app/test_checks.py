"""Settings that cannot deliver stop every process at start: system checks, and a refusal in
AppConfig.ready() for the processes that run no checks (gunicorn, runrelieve, mail children)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import checks

ROOT = Path(__file__).resolve().parents[2]
SMTP = {"default": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend", "OPTIONS": {}}}
CONSOLE = {"default": {"BACKEND": "django.core.mail.backends.console.EmailBackend", "OPTIONS": {}}}

pytestmark = pytest.mark.django_db  # the model checks ask the database about JSON support


def relieve_messages(level_prefix="relieve_app."):
    return [message for message in checks.run_checks() if message.id.startswith(level_prefix)]


@pytest.fixture
def deliverable(settings):
    """Settings that deliver: each test breaks one thing."""
    settings.MAILERS = SMTP
    settings.CONTACT_RECIPIENT = "inbox@example.org"
    settings.DEFAULT_FROM_EMAIL = "Site <noreply@example.org>"
    settings.CONTACT_RATE_LIMIT = "5/m"
    settings.DEBUG = False
    settings.RELIEVE_ALLOW_DEV_MAIL = False
    return settings


def test_deliverable_settings_pass(deliverable):
    assert relieve_messages() == []


@pytest.mark.parametrize(
    "value", ["", "me", "me@", "a@example.org, b@example.org", "a@example.org\nBcc: x@y.z"]
)
@pytest.mark.parametrize("name", ["CONTACT_RECIPIENT", "DEFAULT_FROM_EMAIL"])
def test_a_setting_that_is_not_one_address_is_an_error(deliverable, name, value):
    setattr(deliverable, name, value)

    [error] = relieve_messages()

    assert (error.id, error.level, error.obj) == ("relieve_app.E002", checks.ERROR, f"settings.{name}")
    assert f"{name} = {value!r} is not an email address" in error.msg


@pytest.mark.parametrize("value", ["inbox@example.org", "Site <noreply@example.org>", "noreply@localhost"])
def test_addresses_with_or_without_a_name_pass(deliverable, value):
    deliverable.CONTACT_RECIPIENT = deliverable.DEFAULT_FROM_EMAIL = value

    assert relieve_messages() == []


@pytest.mark.parametrize("backend", ["console", "filebased", "locmem", "dummy"])
def test_a_backend_that_delivers_nothing_is_an_error_in_production(deliverable, backend):
    deliverable.MAILERS = {"default": {"BACKEND": f"django.core.mail.backends.{backend}.EmailBackend"}}

    [error] = relieve_messages()

    assert (error.id, error.level) == ("relieve_app.E003", checks.ERROR)
    assert "nothing is delivered" in error.msg
    assert "RELIEVE_ALLOW_DEV_MAIL=true" in error.hint


def test_a_development_backend_allowed_on_purpose_is_still_a_warning(deliverable):
    deliverable.MAILERS = CONSOLE
    deliverable.RELIEVE_ALLOW_DEV_MAIL = True

    [warning] = relieve_messages()

    assert (warning.id, warning.level) == ("relieve_app.W002", checks.WARNING)


def test_a_development_backend_is_fine_with_debug(deliverable):
    deliverable.MAILERS = CONSOLE
    deliverable.DEBUG = True

    assert relieve_messages() == []


def start_django(code="import django; django.setup()", **env):
    """A new process that loads the project with `env` over this one's environment."""
    ours = {"DATABASE_URL", "EMAIL_URL", "DEBUG", "SECRET_KEY", "CONTACT_RECIPIENT", "DEFAULT_FROM_EMAIL"}
    clean = {key: value for key, value in os.environ.items() if key not in ours}
    env = {**clean, "DJANGO_SETTINGS_MODULE": "project.settings", **env}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


PRODUCTION = {"DEBUG": "false", "SECRET_KEY": "a-real-secret", "EMAIL_URL": "smtp://127.0.0.1:2525"}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"CONTACT_RECIPIENT": ""}, "CONTACT_RECIPIENT = '' is not an email address"),
        ({"DEFAULT_FROM_EMAIL": ""}, "DEFAULT_FROM_EMAIL = '' is not an email address"),
        ({"EMAIL_URL": ""}, "nothing is delivered"),
        ({"EMAIL_URL": "filemail:///var/mail"}, "writes each mail to a file"),
    ],
    ids=["no-recipient", "no-from", "console-in-production", "file-in-production"],
)
def test_settings_that_cannot_deliver_stop_any_process_at_start(env, expected):
    started = start_django(**{**PRODUCTION, **env})

    assert started.returncode != 0
    assert "relieve cannot start" in started.stderr
    assert expected in started.stderr


def test_the_web_process_refuses_too():
    """gunicorn loads project.wsgi and runs no system checks."""
    started = start_django("from project.wsgi import application", **PRODUCTION, CONTACT_RECIPIENT="")

    assert started.returncode != 0
    assert "CONTACT_RECIPIENT = '' is not an email address" in started.stderr


def test_a_development_backend_allowed_on_purpose_starts():
    started = start_django(**{**PRODUCTION, "EMAIL_URL": "consolemail://", "RELIEVE_ALLOW_DEV_MAIL": "true"})

    assert started.returncode == 0, started.stderr


def test_deliverable_production_settings_start():
    started = start_django(**PRODUCTION)

    assert started.returncode == 0, started.stderr
