"""Fixtures shared by the whole suite: a real SMTP server, and Django's mail pointed at it."""

from pathlib import Path

import pytest

from tests.smtp_sink import SMTPSink

SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    """A master keeps its lock file beside the SQLite database on purpose (see master/locks.py); the
    test database goes at the end of the run, and the lock file of the masters it ran goes with it."""
    from django.conf import settings

    if not settings.configured:
        return
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3") and database.get("TEST", {}).get("NAME"):
        Path(f"{database['TEST']['NAME']}.master.lock").unlink(missing_ok=True)


@pytest.fixture
def smtp_sink():
    with SMTPSink() as sink:
        yield sink


@pytest.fixture
def mail_settings(settings, smtp_sink):
    """Django's default mailer sends to `smtp_sink`, in plain SMTP with a short timeout.

    Django 6.1 takes either the old EMAIL_* settings or MAILERS, never both: follow the project's choice.
    """
    if hasattr(settings, "MAILERS"):
        options = {"host": smtp_sink.host, "port": smtp_sink.port, "use_tls": False, "timeout": 5}
        settings.MAILERS = {"default": {"BACKEND": SMTP_BACKEND, "OPTIONS": options}}
    else:
        settings.EMAIL_BACKEND = SMTP_BACKEND
        settings.EMAIL_HOST = smtp_sink.host
        settings.EMAIL_PORT = smtp_sink.port
        settings.EMAIL_USE_TLS = False
        settings.EMAIL_USE_SSL = False
        settings.EMAIL_TIMEOUT = 5
    return settings
