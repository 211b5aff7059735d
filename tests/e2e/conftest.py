"""End-to-end fixtures: `runrelieve` as a real process on a temporary socket and the test database."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from relieve_app.tasks import client

ROOT = Path(__file__).resolve().parents[2]


def database_url():
    """The URL of the database this test runs on, so the master writes where the test reads."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


class MasterProcess:
    """One `manage.py runrelieve`; its output goes to a file that failures print."""

    def __init__(self, socket_path, log_path, env):
        self.socket_path = str(socket_path)
        self.log_path = log_path
        self.env = env
        self.process = None

    def start(self, workers=2, timeout=30, queues=(), options=()):
        """``queues`` like ``["default=1"]``: children per queue, as ``--queue`` takes them; ``options``
        any other arguments of the command."""
        log = open(self.log_path, "a")  # noqa: SIM115 - the child process owns it until it exits
        argv = [
            sys.executable,
            "manage.py",
            "runrelieve",
            "--workers",
            str(workers),
            "--socket",
            self.socket_path,
            *(f"--queue={queue}" for queue in queues),
            *options,
        ]
        self.process = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"runrelieve exited with {self.process.returncode}:\n{self.output()}")
            try:
                return client.request("ping", socket_path=self.socket_path)
            except client.ClientError:
                time.sleep(0.05)
        raise AssertionError(f"runrelieve did not answer within {timeout}s:\n{self.output()}")

    def status(self):
        return client.request("status", socket_path=self.socket_path)

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"runrelieve ignored {sig!r} for {timeout}s:\n{self.output()}") from None

    def run_once(self, *options):
        """Another `runrelieve` on the same socket and settings, run to its end: for start-up refusals."""
        argv = [sys.executable, "manage.py", "runrelieve", "--socket", self.socket_path, *options]
        return subprocess.run(argv, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=60)

    def output(self):
        return Path(self.log_path).read_text() if Path(self.log_path).exists() else ""


@pytest.fixture
def master(transactional_db, settings, smtp_sink, tmp_path):
    """A factory-ready master: `master.start()` runs it against `smtp_sink` and the test database."""
    settings.RELIEVE_SOCKET = str(tmp_path / "r.sock")
    settings.RELIEVE_ACK_TIMEOUT = 2.0
    settings.CONTACT_RECIPIENT = "owner@example.com"
    settings.CONTACT_RATE_LIMIT = ""  # these tests post dozens of messages from one address
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "EMAIL_URL": f"smtp://{smtp_sink.host}:{smtp_sink.port}",
        "EMAIL_TIMEOUT": "5",
        "RELIEVE_MAX_ATTEMPTS": "3",
        "RELIEVE_RETRY_DELAY": "0.2",
        "RELIEVE_SWEEP_INTERVAL": "1",
        "RELIEVE_CALL_TIMEOUT": "20",
        "RELIEVE_GRACE": "5",
        "RELIEVE_FAILURE_NOTIFY": "",  # the sink holds contact mail only, unless a test asks for notices
    }
    process = MasterProcess(settings.RELIEVE_SOCKET, tmp_path / "master.log", env)
    yield process
    process.stop(signal.SIGKILL if process.process and process.process.poll() is None else signal.SIGTERM)


def wait_until(predicate, timeout=60, interval=0.1, message="condition"):
    """Poll until `predicate()` is truthy; the AssertionError says what was awaited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")
