"""What the master imports before it forks its zygote, so that its children share those pages."""

import json
import logging
import os
import subprocess
import sys

import pytest
from django.db import connection
from django.db.utils import ConnectionHandler

from relieve_app.tasks import lazy_imports
from relieve_app.tasks.master.children import IMPORT_AHEAD, SETUP, preloads

SMTP = "django.core.mail.backends.smtp.EmailBackend"
FILE = "django.core.mail.backends.filebased.EmailBackend"


def test_the_modules_are_the_sql_compiler_the_mail_backends_and_the_idna_codec(settings):
    settings.MAILERS = {"default": {"BACKEND": SMTP}, "bulk": {"BACKEND": FILE}, "plain": {"BACKEND": SMTP}}
    assert lazy_imports.modules() == [
        connection.ops.compiler_module,
        "django.core.mail.backends.smtp",
        "django.core.mail.backends.filebased",
        "encodings.idna",
    ]


@pytest.mark.filterwarnings("ignore:The EMAIL_BACKEND setting is deprecated")
def test_the_older_email_backend_setting_is_read_when_there_are_no_mailers(settings):
    del settings.MAILERS
    settings.EMAIL_BACKEND = FILE
    assert lazy_imports.mail_backends() == [FILE]


def test_a_backend_that_does_not_import_is_logged_and_the_others_are_imported(settings, caplog):
    settings.MAILERS = {
        "default": {"BACKEND": "relieve_no_such_package.mail.Backend"},
        "other": {"BACKEND": "tests.tasks_fixtures.lazy_mail.EmailBackend"},
    }
    assert "tests.tasks_fixtures.lazy_mail" not in sys.modules
    with caplog.at_level(logging.INFO, logger="relieve_app.tasks.lazy_imports"):
        lazy_imports.import_ahead()
    assert "relieve_no_such_package.mail is not imported ahead: No module named" in caplog.text
    assert "tests.tasks_fixtures.lazy_mail" in sys.modules


def test_a_database_whose_backend_does_not_load_is_logged_and_skipped(settings, monkeypatch, caplog):
    """A second database with a backend that is not installed: the master must still start."""
    settings.MAILERS = {"default": {"BACKEND": SMTP}}
    handler = ConnectionHandler(
        {
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
            "reports": {"ENGINE": "relieve_no_such_backend"},
        }
    )
    monkeypatch.setattr("django.db.connections", handler)
    with caplog.at_level(logging.INFO, logger="relieve_app.tasks.lazy_imports"):
        names = lazy_imports.modules()
    assert names == ["django.db.models.sql.compiler", "django.core.mail.backends.smtp", "encodings.idna"]
    assert "the SQL compiler of database 'reports' is not imported ahead" in caplog.text


def test_a_fresh_interpreter_imports_them_only_when_asked():
    """In a new process, as the master is before its fork: Django set up, the mail not imported yet."""
    code = (
        "import django, json, sys; django.setup()\n"
        "from relieve_app.tasks import lazy_imports\n"
        "names = lazy_imports.modules()\n"
        "before = [name for name in names if name in sys.modules]\n"
        "lazy_imports.import_ahead()\n"
        "print(json.dumps([names, before, [name for name in names if name in sys.modules]]))\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings", "EMAIL_URL": "smtp://127.0.0.1:2525"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    names, before, after = json.loads(done.stdout.splitlines()[-1])
    assert "django.core.mail.backends.smtp" in names
    # Django imports PostgreSQL's compiler with its backend; SQLite's shared one waits for a query.
    assert not {"django.core.mail.backends.smtp", "encodings.idna"} & set(before)
    assert after == names


def test_a_zygote_started_fresh_imports_them_too():
    """After a reload or a death the zygote is a new interpreter: its preloads carry the same step."""
    assert preloads("relieve_app.tasks.runner:Runner")[:2] == [SETUP, IMPORT_AHEAD]
