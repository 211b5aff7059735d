"""Settings that cannot deliver: system checks that say what to change in the project's own settings,
runrelieve refusing to start on them, the contact page closed on the errors (gunicorn runs no checks),
and migrate or check running whatever the mail settings."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import checks
from django.utils.deprecation import RemovedInDjango2028Warning

from relieve_app.checks import check_mail_backend, refusal
from relieve_app.models import MailOutcome

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
def test_a_backend_that_delivers_nothing_is_a_warning_that_stops_only_runrelieve(deliverable, backend):
    deliverable.MAILERS = {"default": {"BACKEND": f"django.core.mail.backends.{backend}.EmailBackend"}}

    [warning] = relieve_messages()

    assert (warning.id, warning.level) == ("relieve_app.W003", checks.WARNING)
    assert "nothing is delivered" in warning.msg and "runrelieve will not start" in warning.msg
    assert "RELIEVE_ALLOW_DEV_MAIL = True" in warning.hint
    assert refusal() == "" and "nothing is delivered" in refusal(sending=True)


# The older setting is exercised on purpose; Django warns on each read and when the test restores it.
@pytest.mark.filterwarnings(
    "ignore:The EMAIL_BACKEND setting is deprecated:django.utils.deprecation.RemovedInDjango2028Warning"
)
def test_the_hint_names_the_mail_settings_the_project_uses(deliverable):
    deliverable.MAILERS = CONSOLE
    [warning] = relieve_messages()
    assert warning.obj == "settings.MAILERS"
    assert "Point MAILERS['default'] at your SMTP server" in warning.hint
    assert "EMAIL_URL" not in warning.hint

    del deliverable.MAILERS  # Django's own mail check fails on a MAILERS deleted by a test: ask ours alone
    with pytest.warns(RemovedInDjango2028Warning, match="EMAIL_BACKEND setting is deprecated"):
        deliverable.EMAIL_BACKEND = CONSOLE["default"]["BACKEND"]  # still read, until Django 2028
    [warning] = check_mail_backend(None)
    assert warning.obj == "settings.EMAIL_BACKEND"
    assert "Set EMAIL_BACKEND = 'django.core.mail.backends.smtp.EmailBackend' and EMAIL_HOST" in warning.hint


def test_a_development_backend_allowed_on_purpose_is_still_a_warning(deliverable):
    deliverable.MAILERS = CONSOLE
    deliverable.RELIEVE_ALLOW_DEV_MAIL = True

    [warning] = relieve_messages()

    assert (warning.id, warning.level) == ("relieve_app.W002", checks.WARNING)


def test_a_development_backend_is_fine_with_debug(deliverable):
    deliverable.MAILERS = CONSOLE
    deliverable.DEBUG = True

    assert relieve_messages() == []


def manage(*argv, **env):
    """`manage.py` in a new process, with `env` over this one's environment."""
    ours = {"DATABASE_URL", "EMAIL_URL", "DEBUG", "SECRET_KEY", "CONTACT_RECIPIENT", "DEFAULT_FROM_EMAIL"}
    clean = {key: value for key, value in os.environ.items() if key not in ours}
    env = {**clean, "DJANGO_SETTINGS_MODULE": "project.settings", **env}
    return subprocess.run(
        [sys.executable, "manage.py", *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


PRODUCTION = {"DEBUG": "false", "SECRET_KEY": "a-real-secret", "EMAIL_URL": "smtp://127.0.0.1:2525"}


@pytest.fixture
def production(tmp_path):
    """Production settings on a database of their own, with mail that goes nowhere."""
    return {
        **PRODUCTION,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "EMAIL_URL": "consolemail://",
    }


def test_mail_that_goes_nowhere_lets_migrate_and_check_run(production):
    """They used to stop with a SettingsRefused traceback: nothing they do sends a mail."""
    migrated = manage("migrate", "--noinput", **production)
    checked = manage("check", **production)

    assert migrated.returncode == 0, migrated.stderr
    assert checked.returncode == 0, checked.stderr
    assert (
        "relieve_app.W003" in checked.stderr
        and "Point MAILERS['default'] at your SMTP server" in checked.stderr
    )
    assert "Traceback" not in migrated.stderr + checked.stderr


def test_mail_that_goes_nowhere_stops_runrelieve_with_one_paragraph(production):
    started = manage("runrelieve", "--workers", "1", **production)

    assert started.returncode == 1
    [refused] = [line for line in started.stderr.splitlines() if line.startswith("CommandError: ")]
    assert "relieve cannot start: DEBUG is off but the mail backend in MAILERS" in refused
    assert "RELIEVE_ALLOW_DEV_MAIL = True" in refused
    assert "Traceback" not in started.stderr


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"CONTACT_RECIPIENT": ""}, "CONTACT_RECIPIENT = '' is not an email address"),
        ({"DEFAULT_FROM_EMAIL": ""}, "DEFAULT_FROM_EMAIL = '' is not an email address"),
    ],
    ids=["no-recipient", "no-from"],
)
def test_an_address_that_is_no_address_stops_runrelieve_as_a_check(production, env, expected):
    started = manage(
        "runrelieve", "--workers", "1", **{**production, "EMAIL_URL": PRODUCTION["EMAIL_URL"], **env}
    )

    assert started.returncode == 1
    assert "relieve_app.E002" in started.stderr and expected in started.stderr
    assert "Traceback" not in started.stderr


def test_the_contact_page_is_closed_on_an_error_and_logs_the_fix(deliverable, client, caplog):
    """gunicorn runs no system checks: the page takes no message that could never be delivered."""
    deliverable.CONTACT_RECIPIENT = ""

    page = client.get("/contact/")
    posted = client.post("/contact/", {"emitter": "a@example.org"}, HTTP_ACCEPT="application/json")

    assert page.status_code == posted.status_code == 503
    assert "The contact form is closed for now" in page.content.decode()
    assert "closed for now" in posted.json()["errors"]["__all__"][0]
    assert "CONTACT_RECIPIENT = '' is not an email address" in caplog.text
    assert "Set CONTACT_RECIPIENT to who receives the contact mail" in caplog.text
    assert not MailOutcome.objects.exists()


def test_the_contact_page_stays_open_when_only_the_mail_backend_delivers_nothing(deliverable, client):
    """Its messages wait, safe, for a runrelieve that can send them."""
    deliverable.MAILERS = CONSOLE
    assert client.get("/contact/").status_code == 200


def test_a_development_backend_allowed_on_purpose_starts(tmp_path):
    env = {**PRODUCTION, "EMAIL_URL": "consolemail://", "RELIEVE_ALLOW_DEV_MAIL": "true"}
    checked = manage("check", "--fail-level", "ERROR", **env)

    assert checked.returncode == 0, checked.stderr
    assert "relieve_app.W002" in checked.stderr
    assert refusal_in_process(env) == ""


def refusal_in_process(env):
    """What runrelieve would refuse on, worked out in a process of its own with `env`."""
    code = "import json; from relieve_app.checks import refusal; print(json.dumps(refusal(sending=True)))"
    shell = manage("shell", "--no-imports", "-c", code, **env)
    assert shell.returncode == 0, shell.stderr
    return json.loads(shell.stdout.strip().splitlines()[-1])


def test_deliverable_production_settings_start():
    assert refusal_in_process(PRODUCTION) == ""
