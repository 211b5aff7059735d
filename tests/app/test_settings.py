import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

BASE_DIR = Path(__file__).resolve().parents[2]


def load_settings(**env):
    """Import project.settings in a fresh interpreter, with `env` instead of this process's settings."""
    names = ["DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASES", "MAILERS", "CACHES"]
    app_names = ["RELIEVE_SOCKET", "RELIEVE_ACK_TIMEOUT", "CONTACT_RECIPIENT", "CONTACT_RATE_LIMIT"]
    code = (
        "import json, os, django\n"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'project.settings'\n"
        "import project.settings as s\n"
        "django.setup()\n"
        "from relieve_app.conf import app_settings as a\n"
        f"values = {{n: getattr(s, n) for n in {names!r}}}\n"
        f"values.update({{n: getattr(a, n) for n in {app_names!r}}})\n"
        "print(json.dumps(values, default=str))\n"
    )
    ours = {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "EMAIL_URL", "CACHE_URL", *names, *app_names}
    clean = {key: value for key, value in os.environ.items() if key not in ours}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result


@pytest.mark.django_db
def test_sqlite_runs_in_wal_mode():
    if connection.vendor != "sqlite":
        pytest.skip("the database is not SQLite")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
        cursor.execute("PRAGMA synchronous")
        assert cursor.fetchone()[0] == 1  # NORMAL
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone()[0] == 20_000


def test_sqlite_test_database_is_a_file():
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.sqlite3":
        pytest.skip("the database is not SQLite")
    assert Path(database["TEST"]["NAME"]).is_absolute()
    assert database["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


def test_production_without_secret_key_refuses_to_start():
    result = load_settings(DEBUG="false", SECRET_KEY="")

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY is not set" in result.stderr


def test_environment_drives_the_settings(tmp_path):
    result = load_settings(
        DEBUG="false",
        SECRET_KEY="a-real-secret",
        ALLOWED_HOSTS="example.org,www.example.org",
        DATABASE_URL="postgres://relieve:pw@db.internal:5432/relieve",
        EMAIL_URL="smtp+tls://user:pw@smtp.example.org:587",
        RELIEVE_SOCKET=str(tmp_path / "r.sock"),
        RELIEVE_ACK_TIMEOUT="0.25",
        CONTACT_RECIPIENT="inbox@example.org",
        CONTACT_RATE_LIMIT="100/h",
        CACHE_URL="redis://cache.internal:6379/1",
    )

    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["DEBUG"] is False
    assert loaded["ALLOWED_HOSTS"] == ["example.org", "www.example.org"]
    database = loaded["DATABASES"]["default"]
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert (database["HOST"], database["NAME"]) == ("db.internal", "relieve")
    assert "init_command" not in database.get("OPTIONS", {})
    mailer = loaded["MAILERS"]["default"]
    assert mailer["BACKEND"] == "django.core.mail.backends.smtp.EmailBackend"
    assert mailer["OPTIONS"]["host"] == "smtp.example.org"
    assert mailer["OPTIONS"]["port"] == 587
    assert mailer["OPTIONS"]["use_tls"] is True
    assert loaded["RELIEVE_SOCKET"] == str(tmp_path / "r.sock")
    assert loaded["RELIEVE_ACK_TIMEOUT"] == 0.25
    assert loaded["CONTACT_RECIPIENT"] == "inbox@example.org"
    assert loaded["CONTACT_RATE_LIMIT"] == "100/h"
    assert loaded["CACHES"]["default"] == {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://cache.internal:6379/1",
    }


@pytest.mark.skipif((BASE_DIR / ".env").exists(), reason="a local .env replaces the defaults")
def test_defaults_suit_a_laptop():
    result = load_settings()

    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["DEBUG"] is True
    assert loaded["SECRET_KEY"]
    assert loaded["DATABASES"]["default"]["NAME"] == str(BASE_DIR / "var" / "db.sqlite3")
    assert loaded["MAILERS"]["default"]["BACKEND"] == "django.core.mail.backends.console.EmailBackend"
    assert loaded["RELIEVE_SOCKET"] == str(BASE_DIR / "var" / "relieve.sock")
    assert loaded["CONTACT_RATE_LIMIT"] == "5/m"
    assert loaded["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
