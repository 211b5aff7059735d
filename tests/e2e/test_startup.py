"""runrelieve refuses to start, before any child, with a message that says what to fix: settings that
cannot deliver, and a socket path it could not listen on. A refusal is a CommandError, no traceback."""

import subprocess
import sys

import pytest

from tests.e2e.conftest import ROOT
from tests.readonly import SKIP_REASON, can_mount_read_only, read_only

pytestmark = pytest.mark.e2e

CHILD_STARTED = "started (pid"


def run_with_read_only(folder, master):
    """runrelieve, as master.run_once() does, with `folder` mounted read-only for it alone."""
    argv = [sys.executable, "manage.py", "runrelieve", "--socket", master.socket_path]
    return subprocess.run(
        read_only(folder, argv),
        cwd=ROOT,
        env=master.env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_refused(result, *expected):
    assert result.returncode == 1, result.stderr
    for text in expected:
        assert text in result.stderr
    assert "Traceback" not in result.stderr
    assert CHILD_STARTED not in result.stderr  # refused before any child started


def test_an_unwritable_socket_folder_is_refused_before_any_child_starts(master, tmp_path):
    if not can_mount_read_only():
        pytest.skip(SKIP_REASON)
    folder = tmp_path / "ro"
    folder.mkdir()
    master.socket_path = str(folder / "r.sock")

    refused = run_with_read_only(folder, master)

    assert_refused(refused, f"the socket's folder {folder} is not writable by this user", "--socket")


def test_a_socket_folder_that_cannot_be_created_is_refused(master, tmp_path):
    if not can_mount_read_only():
        pytest.skip(SKIP_REASON)
    master.socket_path = str(tmp_path / "new" / "r.sock")

    refused = run_with_read_only(tmp_path, master)

    assert_refused(
        refused, f"cannot create the socket's folder {tmp_path / 'new'}: {tmp_path} is not writable"
    )


def test_a_file_where_the_socket_folder_should_be_is_refused(master, tmp_path):
    (tmp_path / "afile").write_text("in the way")
    master.socket_path = str(tmp_path / "afile" / "r.sock")

    refused = master.run_once()

    assert_refused(refused, f"{tmp_path / 'afile'} is a file, not a folder")
    assert "File exists" not in refused.stderr


def test_settings_that_cannot_deliver_stop_runrelieve(master):
    master.env["CONTACT_RECIPIENT"] = ""

    refused = master.run_once()

    assert refused.returncode != 0
    assert "CONTACT_RECIPIENT = '' is not an email address" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert CHILD_STARTED not in refused.stderr


def test_a_development_backend_allowed_in_production_is_said_loudly(master):
    master.env.update(
        DEBUG="false", SECRET_KEY="a-real-secret", EMAIL_URL="consolemail://", RELIEVE_ALLOW_DEV_MAIL="true"
    )

    master.start()

    assert "RELIEVE_ALLOW_DEV_MAIL is on with DEBUG off: mail is NOT delivered" in master.output()
