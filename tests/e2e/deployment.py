"""A multi-host deployment for tests and benchmarks: hosts in network namespaces sharing one PostgreSQL.

Each `Site` is one host (see ``netns.py``) with its own working folder and socket path, running
gunicorn and/or ``runrelieve`` against the same database, reached over PostgreSQL's Unix socket
(a namespace cannot reach 127.0.0.1 of this one), and sending to one SMTP sink that listens on
the first host's gateway address.
"""

import contextlib
import http.client
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

from relieve_app.pool.framing import FrameDecoder, encode
from tests.processes import stop_all
from tests.web_client import get

ROOT = Path(__file__).resolve().parents[2]
PG_SOCKET_DIR = os.environ.get("PG_SOCKET_DIR", "/var/run/postgresql")
WEB_PORT = 8000
BODY = "A message from another host, number {n}, with **Markdown** in it."


class DeploymentError(Exception):
    """A process could not be started; the message carries the end of its log."""


def socket_database_url(settings_dict):
    """The same database as `settings_dict`, over PostgreSQL's Unix socket."""
    user = settings_dict.get("USER") or "postgres"
    password = f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else ""
    return f"postgres://{user}{password}@/{settings_dict['NAME']}?host={PG_SOCKET_DIR}"


class Site:
    def __init__(self, host, name, folder, env):
        self.host = host
        self.name = name
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.socket_path = str(self.folder / "r.sock")
        self.env = {
            **env,
            "ALLOWED_HOSTS": host.address,
            "RELIEVE_SOCKET": self.socket_path,
            "RELIEVE_HOST": name,
        }
        self.web = None
        self.master = None
        self._token = None

    # processes --------------------------------------------------------------------

    def start_web(self, workers=2, timeout=60):
        argv = [sys.executable, "-m", "gunicorn", "project.wsgi", "-b", f"{self.host.address}:{WEB_PORT}"]
        self.web = self._spawn([*argv, "-w", str(workers)], "web.log")
        self._wait(self.web, "gunicorn", "web.log", timeout, lambda: self._get("/contact/").status == 200)

    def start_master(self, workers=2, timeout=60):
        argv = [sys.executable, "manage.py", "runrelieve", "--workers", str(workers)]
        self.master = self._spawn([*argv, "--socket", self.socket_path], "master.log")
        self._wait(self.master, "runrelieve", "master.log", timeout, lambda: self.request("ping"))

    def kill_master(self, sig=signal.SIGKILL, timeout=30):
        self.master.send_signal(sig)
        return self.master.wait(timeout)

    def request(self, op, timeout=2.0, **args):
        """One operation on this host's master socket (reachable here: Unix sockets ignore namespaces)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(self.socket_path)
            sock.sendall(encode({"op": op, "args": args}))
            decoder = FrameDecoder()
            frames = []
            while not frames:
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError(f"the master of {self.name} closed the connection")
                frames = decoder.feed(data)
        return frames[0]["result"]

    def log(self, name):
        path = self.folder / name
        return path.read_text() if path.exists() else ""

    # the web side -----------------------------------------------------------------

    def post(self, n, subject=None):
        """POST the contact form as a browser would (CSRF cookie and token); returns the outcome id."""
        if self._token is None:
            self._token = _csrf_token(self._get("/contact/"))
        form = {"emitter": f"visitor{n}@example.org", "subject": subject or f"{self.name} {n}"}
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            "Cookie": f"csrftoken={self._token}",
            "X-CSRFToken": self._token,
        }
        conn = http.client.HTTPConnection(self.host.address, WEB_PORT, timeout=30)
        try:
            conn.request("POST", "/contact/", urlencode({**form, "body": BODY.format(n=n)}), headers)
            response = conn.getresponse()
            content = response.read()
        finally:
            conn.close()
        if response.status != 202:
            raise AssertionError(f"POST to {self.name} answered {response.status}: {content[:300]!r}")
        return json.loads(content)["id"]

    def _get(self, path):
        return get(self.host.address, WEB_PORT, path)

    def _spawn(self, argv, log_name):
        return self.host.spawn(argv, cwd=ROOT, env=self.env, log_path=self.folder / log_name)

    def _wait(self, process, what, log_name, timeout, answers):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise DeploymentError(
                    f"{what} on {self.name} exited with {process.returncode}:\n{self.log(log_name)[-3000:]}"
                )
            with contextlib.suppress(OSError, http.client.HTTPException, KeyError):
                if answers():
                    return
            time.sleep(0.1)
        tail = self.log(log_name)[-3000:]
        raise DeploymentError(f"{what} on {self.name} did not answer in {timeout}s:\n{tail}")


def _csrf_token(response):
    for name, value in response.getheaders():
        if name.lower() == "set-cookie" and value.startswith("csrftoken="):
            return value.split(";", 1)[0].split("=", 1)[1]
    raise DeploymentError("GET /contact/ set no csrftoken cookie")


def environment(database_url, sink, **overrides):
    """What every process of the deployment shares: the database, the sink, and the master's pace."""
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DATABASE_URL": database_url,
        "EMAIL_URL": f"smtp://{sink.host}:{sink.port}",
        "EMAIL_TIMEOUT": "5",
        "CONTACT_RECIPIENT": "owner@example.com",
        "CONTACT_RATE_LIMIT": "",
        "RELIEVE_ACK_TIMEOUT": "0.5",
        "RELIEVE_MAX_ATTEMPTS": "3",
        "RELIEVE_RETRY_DELAY": "0.2",
        "RELIEVE_CALL_TIMEOUT": "20",
        "RELIEVE_GRACE": "5",
        **overrides,
    }


def stop(sites, timeout=20):
    """SIGTERM every process of every site, SIGKILL what does not stop."""
    stop_all([process for site in sites for process in (site.web, site.master)], timeout)
