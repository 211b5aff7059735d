"""`make run` and its runner stop on Ctrl-C or SIGTERM: both processes, the master gracefully, status 0.

Real processes on a free port and a database of their own. The terminal is a real pseudo-terminal:
Ctrl-C is the byte 0x03 written to it, which the terminal turns into SIGINT for its foreground.
"""

import fcntl
import os
import pty
import signal
import socket
import subprocess
import sys
import termios
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.e2e


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def env(tmp_path):
    return {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "RELIEVE_SOCKET": str(tmp_path / "r.sock"),
        "EMAIL_URL": "consolemail://",
        "RELIEVE_WORKERS": "1",
        "RELIEVE_GRACE": "2",
        "PYTHONUNBUFFERED": "1",
    }


class Output:
    """Everything a process writes to `fd`, read by a thread so the process never blocks on it."""

    def __init__(self, fd):
        self.fd = fd
        self.chunks = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                return
            if not data:
                return
            self.chunks.append(data)

    @property
    def text(self):
        return b"".join(self.chunks).decode(errors="replace")


def wait_until_serving(process, port, output, timeout=90):
    """Until the contact page answers and the master says it listens."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"exited with {process.returncode}:\n{output.text}")
        if "listening on" in output.text:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/contact/", timeout=5) as page:
                    if page.status == 200:
                        return
            except OSError:
                pass
        time.sleep(0.2)
    raise AssertionError(f"not serving after {timeout}s:\n{output.text}")


def finish(process, output, timeout=60):
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        raise AssertionError(f"still running {timeout}s after the stop:\n{output.text}") from None
    time.sleep(0.2)  # the last lines
    return output.text


def assert_stopped_cleanly(text):
    assert "stopping: no new tasks" in text
    assert "relieve_app.tasks.master.server: stopped" in text  # the master's graceful stop ran to its end
    assert "relieve master stopped" in text
    assert "Segmentation fault" not in text
    assert "Traceback" not in text


def own_terminal():
    """In the child: the pseudo-terminal on stdin becomes the controlling terminal of its new session."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def test_ctrl_c_in_a_terminal_stops_make_run_with_status_0(env):
    port = free_port()
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"PORT={port}"],
        cwd=ROOT,
        env=env,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        start_new_session=True,
        preexec_fn=own_terminal,
    )
    os.close(follower)
    output = Output(leader)
    try:
        wait_until_serving(process, port, output)
        os.write(leader, b"\x03")  # Ctrl-C

        text = finish(process, output)
    finally:
        os.close(leader)

    assert process.returncode == 0, text
    assert_stopped_cleanly(text)
    assert "Interrupt" not in text  # make's own line when it dies of the signal


def start_runner(env, port):
    read, write = os.pipe()
    process = subprocess.Popen(
        [sys.executable, "-m", "project.run", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=write,
        stderr=write,
        start_new_session=True,
    )
    os.close(write)
    return process, Output(read)


@pytest.fixture
def migrated(env):
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True)
    return env


def test_sigint_to_the_runners_group_stops_both_with_status_0(migrated):
    port = free_port()
    process, output = start_runner(migrated, port)
    wait_until_serving(process, port, output)

    os.killpg(process.pid, signal.SIGINT)  # what a terminal does, without one
    text = finish(process, output)

    assert process.returncode == 0, text
    assert_stopped_cleanly(text)


def test_sigterm_to_the_web_server_stops_the_master_too(migrated):
    port = free_port()
    process, output = start_runner(migrated, port)
    wait_until_serving(process, port, output)
    web = [pid for pid in children(process.pid) if "runserver" in command_line(pid)]
    assert web, output.text

    os.kill(web[0], signal.SIGTERM)
    text = finish(process, output)

    assert process.returncode == 0, text
    assert_stopped_cleanly(text)


def children(pid):
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()]


def command_line(pid):
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def test_sigterm_to_the_master_leaves_the_web_serving_and_says_so_loudly(migrated):
    """The web side is built to go on without a master: pages show the master-down banner and posts
    queue. `make run` keeps serving so that is what one sees, says what happened, and exits 1 later."""
    port = free_port()
    process, output = start_runner(migrated, port)
    wait_until_serving(process, port, output)
    master = [pid for pid in children(process.pid) if "runrelieve" in command_line(pid)]
    assert master, output.text

    os.kill(master[0], signal.SIGTERM)
    deadline = time.monotonic() + 60
    while "the relieve master stopped by itself" not in output.text and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "the relieve master stopped by itself" in output.text, output.text
    assert "python manage.py runrelieve" in output.text.split("stopped by itself", 1)[1]
    assert process.poll() is None, output.text  # still running: the web server goes on
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/contact/", timeout=10) as page:
        assert page.status == 200

    os.killpg(process.pid, signal.SIGINT)  # then Ctrl-C
    text = finish(process, output)
    assert process.returncode == 1, text  # make says so too: the run did not end as it was asked to
    assert "the relieve master had stopped by itself (status 0)" in text
