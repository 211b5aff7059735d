"""The app's settings: a default for each, the project's value when it sets one, read at each use."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import checks

from relieve_app import conf
from relieve_app.conf import DEFAULTS, app_settings
from relieve_app.pool.framing import MAX_FRAME

APP = Path(conf.__file__).parent
ROOT = APP.parent


def errors_about(name):
    return [m for m in conf.check_settings(None) if m.obj == f"settings.{name}"]


def test_the_check_is_registered():
    assert conf.check_settings in checks.registry.registry.get_checks()


def test_every_setting_has_a_default_when_the_project_sets_none(settings):
    for name in DEFAULTS:
        if hasattr(settings, name):
            delattr(settings, name)

    assert app_settings.RELIEVE_WORKERS == 4
    assert app_settings.CONTACT_RATE_LIMIT == "5/m"
    assert app_settings.CONTACT_TRUSTED_PROXIES == []
    socket = app_settings.RELIEVE_SOCKET
    assert socket == str(Path(settings.BASE_DIR) / "var" / "relieve.sock")
    assert {name: getattr(app_settings, name) for name in DEFAULTS}  # every one readable
    assert conf.check_settings(None) == []


def test_a_project_value_is_seen_at_once(settings):
    settings.RELIEVE_WORKERS = 7
    assert app_settings.RELIEVE_WORKERS == 7
    settings.RELIEVE_WORKERS = 2
    assert app_settings.RELIEVE_WORKERS == 2


def test_a_relative_socket_lives_under_base_dir(settings, tmp_path):
    settings.BASE_DIR = tmp_path
    settings.RELIEVE_SOCKET = "run/r.sock"
    relative = app_settings.RELIEVE_SOCKET
    settings.RELIEVE_SOCKET = "/tmp/elsewhere.sock"
    absolute = app_settings.RELIEVE_SOCKET
    assert (relative, absolute) == (str(tmp_path / "run" / "r.sock"), "/tmp/elsewhere.sock")


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="not a setting of relieve_app"):
        app_settings.RELIEVE_WORKRES  # noqa: B018


def test_the_largest_arguments_default_fits_a_frame_with_room_for_the_job():
    assert DEFAULTS["RELIEVE_MAX_ARGS_BYTES"] <= conf.MAX_ARGS_BYTES < MAX_FRAME


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("RELIEVE_WORKERS", 0, "at least 1"),
        ("RELIEVE_WORKERS", "4", "a whole number"),
        ("RELIEVE_MAX_ATTEMPTS", 2.5, "a whole number"),
        ("RELIEVE_ACK_TIMEOUT", 0, "at least"),
        ("RELIEVE_GRACE", -1, "at least 0"),
        ("RELIEVE_CALL_TIMEOUT", True, "a number of seconds"),
        ("RELIEVE_MAX_MEMORY_MB", -5, "at least 0"),
        ("RELIEVE_ALLOW_DEV_MAIL", "yes", "True or False"),
        ("RELIEVE_PRELOAD_IMMORTAL", "no", "True or False"),
        ("RELIEVE_SOCKET", "/" + "s" * 120, "too long for a Unix socket"),
        ("RELIEVE_SOCKET", "", "a file path"),
        ("RELIEVE_TASK", "relieve_app.tasks.runner:Runner:extra", "a module and a class"),
        ("RELIEVE_MAX_ARGS_BYTES", 0, "at least 1"),
        ("RELIEVE_MAX_ARGS_BYTES", 2**20, "at most 983040"),
        ("RELIEVE_MAX_READY", 10000, "a dict of queue names and numbers"),
        ("RELIEVE_MAX_READY", {"mail": 0}, "at least 1"),
        ("RELIEVE_MAX_READY", {"mail": "10"}, "a whole number"),
        ("RELIEVE_METRICS_TOKEN", "short", "at least 16 characters"),
        ("RELIEVE_METRICS_TOKEN", 12345678901234567, "a secret"),
    ],
)
def test_a_bad_value_is_a_check_error_that_names_it(settings, name, value, words):
    setattr(settings, name, value)

    [error] = errors_about(name)

    assert error.msg.startswith(f"{name} = {value!r}: ")
    assert words in error.msg


def test_the_app_reads_its_settings_only_through_conf():
    """A module reading django.conf.settings.RELIEVE_* itself would miss the default in a host project."""
    direct = re.compile(r"(?<![\w\"'])settings\.(RELIEVE|CONTACT)_|getattr\(settings, \"(RELIEVE|CONTACT)_")
    readers = [path.relative_to(APP) for path in APP.rglob("*.py") if direct.search(path.read_text())]
    assert readers == []


def test_a_bad_setting_is_a_check_error_with_no_traceback():
    """What runs the checks (check, runserver, runrelieve, migrate) stops on it, saying what to write."""
    env = {**os.environ, "RELIEVE_WORKERS": "0", "CONTACT_TRUSTED_PROXIES": "nowhere"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode != 0
    assert "RELIEVE_WORKERS = 0: must be at least 1." in result.stderr
    assert "'nowhere' is not an IP address" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.django_db
def test_a_bad_setting_closes_the_contact_page(settings, client):
    """gunicorn runs no checks: the page is closed rather than failing on a visitor's post."""
    settings.RELIEVE_WORKERS = 0
    assert client.get("/contact/").status_code == 503
    settings.RELIEVE_WORKERS = 1
    assert client.get("/contact/").status_code == 200
