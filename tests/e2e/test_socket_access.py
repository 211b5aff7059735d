"""Only the master's own user may talk to it: the socket is 0600 and owned by that user, the folder
the master makes for it is not world-writable, and another uid is refused at connect.

The suite runs as root here, and root passes any file mode, so the test process itself can always
connect; the second user is a forked child that drops to `nobody`."""

import os
import pwd
import shutil
import socket
import stat
import tempfile
import warnings
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from relieve_app.tasks import client

pytestmark = pytest.mark.e2e


@pytest.fixture
def open_folder():
    """A 0755 folder in /tmp: anyone may reach a socket below it, so only the socket's mode can refuse."""
    root = Path(tempfile.mkdtemp(prefix="relieve-access-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def running(open_folder, master, settings):
    path = open_folder / "run" / "r.sock"  # run/ does not exist yet: the master makes it
    settings.RELIEVE_SOCKET = master.socket_path = str(path)
    master.start()
    return master


def test_the_socket_is_0600_and_owned_by_the_master_user(running):
    info = os.lstat(running.socket_path)
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o600
    master_uid = os.stat(f"/proc/{running.process.pid}").st_uid
    assert info.st_uid == master_uid == os.getuid()
    assert client.request("ping")["pid"] == running.process.pid  # the same user (root here) gets in


def test_no_folder_on_the_way_is_made_world_writable(running):
    made = Path(running.socket_path).parent
    assert not stat.S_IMODE(made.stat().st_mode) & (stat.S_IWOTH | stat.S_IWGRP), oct(made.stat().st_mode)
    var = Path(django_settings.VAR_DIR)  # made by the settings, the default home of the socket
    assert not stat.S_IMODE(var.stat().st_mode) & stat.S_IWOTH, oct(var.stat().st_mode)


def test_no_folder_is_made_world_writable_even_under_umask_0(open_folder, master, settings):
    path = open_folder / "run" / "deeper" / "r.sock"
    settings.RELIEVE_SOCKET = master.socket_path = str(path)
    previous = os.umask(0)  # the master inherits it
    try:
        master.start()
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o600
    for made in (path.parent, path.parent.parent):
        assert not stat.S_IMODE(made.stat().st_mode) & stat.S_IWOTH, f"{made} is {oct(made.stat().st_mode)}"


def test_another_user_cannot_connect(running):
    if os.geteuid() != 0:
        pytest.skip(f"becoming a second uid needs root (CAP_SETUID); this runs as uid {os.geteuid()}")
    nobody = _nobody()
    refused = connect_as(nobody, running.socket_path)
    if refused == "cannot-setuid":
        pytest.skip("setuid is not permitted here (no CAP_SETUID), so no second uid to try")
    assert refused == "PermissionError"

    # The control: the same child gets in once the mode would let it, so the refusal above is the
    # socket's 0600 and not the folders on the way.
    os.chmod(running.socket_path, 0o666)
    try:
        assert connect_as(nobody, running.socket_path) == "connected"
    finally:
        os.chmod(running.socket_path, 0o600)
    assert client.request("ping")["pid"] == running.process.pid


def _nobody():
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        return 65534, 65534
    return entry.pw_uid, entry.pw_gid


def connect_as(user, path):
    """Fork a child that becomes ``user`` (uid, gid) and connects to ``path``.

    Returns "connected", "cannot-setuid", or the name of the error the connect raised.
    """
    uid, gid = user
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", DeprecationWarning
        )  # fork beside threads: the child only makes syscalls
        pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        outcome = "child-error"
        try:
            os.close(read_end)
            try:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
            except PermissionError:
                outcome = "cannot-setuid"
            else:
                try:
                    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                        sock.settimeout(5)
                        sock.connect(path)
                    outcome = "connected"
                except OSError as exc:
                    outcome = type(exc).__name__
        finally:
            os.write(write_end, outcome.encode())
            os._exit(0)
    os.close(write_end)
    try:
        with os.fdopen(read_end, "rb") as pipe:
            outcome = pipe.read().decode()
    finally:
        os.waitpid(pid, 0)
    return outcome
