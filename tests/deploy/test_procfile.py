"""The repository's Procfile, run by honcho as a deployment would: one message posted to its web
process is delivered by its master to a real SMTP server."""

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import database_url, wait_until
from tests.processes import stop_all
from tests.smtp_sink import free_port

ROOT = Path(__file__).resolve().parents[2]
HONCHO = Path(sys.executable).with_name("honcho")

pytestmark = pytest.mark.e2e


def request(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers={"Accept": "application/json", **(headers or {})})
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


def answering(port):
    try:
        return request(port, "GET", "/contact/")[0].status == 200
    except OSError:
        return False


def post_message(port):
    """The JSON API's two steps: a token and its cookie, then the message."""
    response, body = request(port, "GET", "/contact/")
    token = json.loads(body)["csrf_token"]
    cookie = response.getheader("Set-Cookie").split(";", 1)[0]
    message = {"emitter": "ada@example.org", "subject": "From the Procfile", "body": "Hello " * 10}
    response, body = request(
        port,
        "POST",
        "/contact/",
        body=json.dumps(message),
        headers={"Content-Type": "application/json", "X-CSRFToken": token, "Cookie": cookie},
    )
    assert response.status == 202, body
    return json.loads(body)


def test_the_procfile_serves_the_page_and_delivers_a_post(transactional_db, smtp_sink, tmp_path):
    port = free_port()
    env_file = tmp_path / "empty.env"  # honcho would otherwise read the repository's .env
    env_file.write_text("")
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": database_url(),
        "EMAIL_URL": f"smtp://{smtp_sink.host}:{smtp_sink.port}",
        "CONTACT_RECIPIENT": "owner@example.com",
        "CONTACT_RATE_LIMIT": "",
        "RELIEVE_SOCKET": str(tmp_path / "r.sock"),
        "RELIEVE_WORKERS": "1",
        "WEB_CONCURRENCY": "1",
    }
    log = tmp_path / "honcho.log"
    argv = [str(HONCHO), "-e", str(env_file), "-f", "Procfile", "start", "-p", str(port)]
    with open(log, "w") as out:
        # A session of its own: honcho and all it starts are stopped together at the end.
        honcho = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until(lambda: answering(port) or honcho.poll() is not None, timeout=60, message="gunicorn")
        assert honcho.poll() is None, log.read_text()
        wait_until(lambda: Path(env["RELIEVE_SOCKET"]).exists(), timeout=60, message="the master's socket")

        accepted = post_message(port)

        smtp_sink.wait_for(1, timeout=60)
        assert smtp_sink.messages[0]["Subject"] == "From the Procfile"
        assert smtp_sink.messages[0]["To"] == "owner@example.com"
        status = wait_until(
            lambda: (s := json.loads(request(port, "GET", accepted["status_url"])[1]))["final"] and s,
            timeout=30,
            message="the message's final status",
        )
        assert status["status"] == "sent", status
        assert "master.1 |" in log.read_text() and "web.1    |" in log.read_text()

        honcho.terminate()  # as a supervisor stops it: both processes stop, the master gracefully
        honcho.wait(40)
        assert "master.1 stopped (rc=0)" in log.read_text(), log.read_text()
    finally:
        stop_all([honcho])  # honcho passes SIGTERM on to web and master and waits for them
        with contextlib.suppress(ProcessLookupError):
            os.killpg(honcho.pid, signal.SIGKILL)  # anything of its session still left
