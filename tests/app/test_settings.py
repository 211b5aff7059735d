import json
import logging
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests.readonly import SKIP_REASON, can_mount_read_only, read_only

BASE_DIR = Path(__file__).resolve().parents[2]


def load_settings(**env):
    """Import project.settings in a fresh interpreter, with `env` instead of this process's settings."""
    names = ["DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASES", "MAILERS", "CACHES"]
    app_names = ["RELIEVE_SOCKET", "RELIEVE_ACK_TIMEOUT", "CONTACT_RECIPIENT", "CONTACT_RATE_LIMIT"]
    loggers = ["relieve_app", "django.tasks"]
    code = (
        "import json, logging, os, django\n"
        "os.environ['DJANGO_SETTINGS_MODULE'] = 'project.settings'\n"
        "import project.settings as s\n"
        "django.setup()\n"
        "from relieve_app.conf import app_settings as a\n"
        f"values = {{n: getattr(s, n) for n in {names!r}}}\n"
        f"values.update({{n: getattr(a, n) for n in {app_names!r}}})\n"
        f"values['LOG_LEVELS'] = {{n: logging.getLogger(n).getEffectiveLevel() for n in {loggers!r}}}\n"
        "print(json.dumps(values, default=str))\n"
    )
    ours = {
        "DJANGO_SETTINGS_MODULE",
        "DATABASE_URL",
        "EMAIL_URL",
        "CACHE_URL",
        "RELIEVE_LOG_LEVEL",
        *names,
        *app_names,
    }
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
    if not database["ENGINE"].endswith("sqlite3"):
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
        RELIEVE_LOG_LEVEL="WARNING",
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
    # The master's own lines and Django's line per task state, quietened together.
    assert loaded["LOG_LEVELS"] == {"relieve_app": logging.WARNING, "django.tasks": logging.WARNING}


@pytest.mark.parametrize("written, meant", [("true", True), ("false", False)])
def test_a_postgresql_url_may_turn_on_prepared_statements(written, meant):
    result = load_settings(
        DATABASE_URL=f"postgres://relieve@db.internal:5432/relieve?server_side_binding={written}&prepare_threshold=5"
    )

    assert result.returncode == 0, result.stderr
    options = json.loads(result.stdout)["DATABASES"]["default"]["OPTIONS"]
    assert options == {"server_side_binding": meant, "prepare_threshold": 5}  # Django tests `is True`


def test_connections_are_kept_between_requests_and_checked_before_reuse():
    kept = json.loads(load_settings(DATABASE_URL="postgres://relieve@db.internal:5432/relieve").stdout)
    sqlite = json.loads(load_settings(DATABASE_URL="sqlite:///var/other.sqlite3").stdout)
    one_per_request = load_settings(
        DATABASE_URL="postgres://relieve@db.internal:5432/relieve?conn_max_age=0&conn_health_checks=false"
    )

    for loaded in (kept, sqlite):
        database = loaded["DATABASES"]["default"]
        assert database["CONN_MAX_AGE"] == 60 and database["CONN_HEALTH_CHECKS"] is True
    database = json.loads(one_per_request.stdout)["DATABASES"]["default"]
    assert database["CONN_MAX_AGE"] == 0 and database["CONN_HEALTH_CHECKS"] is False  # not the string


@pytest.mark.skipif((BASE_DIR / ".env").exists(), reason="a local .env replaces the defaults")
def test_defaults_suit_a_laptop():
    result = load_settings()

    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["DEBUG"] is True
    assert loaded["SECRET_KEY"]
    assert loaded["DATABASES"]["default"]["NAME"] == str(BASE_DIR / "var" / "db.sqlite3")
    assert loaded["DATABASES"]["default"]["ENGINE"] == "relieve_app.sqlite3"  # requests first to the lock
    assert loaded["MAILERS"]["default"]["BACKEND"] == "django.core.mail.backends.console.EmailBackend"
    assert loaded["RELIEVE_SOCKET"] == str(BASE_DIR / "var" / "relieve.sock")
    assert loaded["CONTACT_RATE_LIMIT"] == "5/m"
    assert loaded["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
    assert loaded["LOG_LEVELS"] == {"relieve_app": logging.INFO, "django.tasks": logging.INFO}


# var/: made at start, only when a default in use lives there; importing settings writes nothing


@pytest.fixture
def tree(tmp_path):
    """A copy of the project without var/, as a fresh deployment has it."""
    copy = tmp_path / "tree"
    copy.mkdir()
    for name in ("project", "relieve_app", "templates"):
        shutil.copytree(BASE_DIR / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(BASE_DIR / "manage.py", copy)
    return copy


def start_in(tree, argv_wrapper=lambda argv: argv, **env):
    """django.setup() in `tree`'s copy of the project."""
    ours = {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "RELIEVE_SOCKET", "EMAIL_URL", "DEBUG", "SECRET_KEY"}
    clean = {key: value for key, value in os.environ.items() if key not in ours}
    argv = argv_wrapper([sys.executable, "-c", "import django; django.setup()"])
    return subprocess.run(
        argv,
        cwd=tree,
        env={**clean, "DJANGO_SETTINGS_MODULE": "project.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def elsewhere(tmp_path):
    return {"DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3", "RELIEVE_SOCKET": str(tmp_path / "r.sock")}


def test_nothing_is_written_to_the_tree_when_database_and_socket_are_elsewhere(tree, tmp_path):
    started = start_in(tree, **elsewhere(tmp_path))

    assert started.returncode == 0, started.stderr
    assert not (tree / "var").exists()


def test_var_is_made_when_the_default_database_is_in_use(tree):
    started = start_in(tree)

    assert started.returncode == 0, started.stderr
    assert (tree / "var").is_dir()
    assert stat.S_IMODE((tree / "var").stat().st_mode) & 0o022 == 0  # nobody else may add to it


def test_a_read_only_tree_starts_with_database_and_socket_elsewhere(tree, tmp_path):
    if not can_mount_read_only():
        pytest.skip(SKIP_REASON)

    started = start_in(tree, lambda argv: read_only(tree, argv), **elsewhere(tmp_path))

    assert started.returncode == 0, started.stderr


def test_a_read_only_tree_with_the_default_database_says_what_to_do(tree):
    if not can_mount_read_only():
        pytest.skip(SKIP_REASON)

    started = start_in(tree, lambda argv: read_only(tree, argv))

    assert started.returncode != 0
    assert (
        f"cannot create the folder {tree / 'var'} for the SQLite database: Read-only file system"
        in started.stderr
    )
    assert "DATABASE_URL" in started.stderr
