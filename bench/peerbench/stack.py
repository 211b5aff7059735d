"""One system on its feet: a fresh database, gunicorn serving the contact page, the worker processes.

The SMTP sink (``sink.py``, a process of its own) outlives the stacks; everything else is a child
process started from the repository root with the benchmark's settings and torn down at the end.
"""

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.peerbench import procs
from tests.processes import stop_all
from tests.web_client import get

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN = "postgres://postgres@127.0.0.1:5432/postgres"


class StackError(Exception):
    """A part of the stack did not start; the message carries the end of its log."""


class Database:
    """A PostgreSQL database of our own, or an SQLite file in WAL mode, created empty for each system."""

    def __init__(self, kind, folder, pg_name):
        self.kind = kind
        self.pg_name = pg_name
        self.path = folder / "bench.sqlite3"
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self):
        if self.kind == "postgres":
            return f"{PG_ADMIN.rsplit('/', 1)[0]}/{self.pg_name}"
        return f"sqlite:///{self.path}"

    def reset(self):
        if self.kind == "postgres":
            self._pg(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
            self._pg(f'CREATE DATABASE "{self.pg_name}"')
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def drop(self):
        if self.kind == "postgres":
            self._pg(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')

    @staticmethod
    def _pg(statement):
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5) as conn:
            conn.execute(statement)


class Stack:
    def __init__(self, system, database, sink, folder, options):
        self.system = system
        self.database = database
        self.sink = sink
        self.folder = folder
        self.options = options
        self.python = sys.executable
        self.web_port = _free_port()
        self.web = None
        self.workers = []
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "bench.peerbench.settings",
            "PEERBENCH_SYSTEM": system.name,
            "PEERBENCH_REDIS": options.redis,
            "DEBUG": "false",
            "SECRET_KEY": "peerbench-only-secret-key-not-for-anything-else-0123456789",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": f"{database.url}?{system.database_query}"
            if system.database_query
            else database.url,
            "EMAIL_URL": f"smtp://{sink.host}:{sink.port}",
            "CONTACT_RECIPIENT": "owner@example.com",
            "CONTACT_RATE_LIMIT": "",
            "RELIEVE_SOCKET": str(folder / f"{system.name}.sock"),
            "RELIEVE_WORKERS": str(options.workers),
        }
        if options.request_clock:
            clock = folder / "request-clock" / f"{system.name} {database.kind}"
            self.env["PEERBENCH_REQUEST_CLOCK"] = str(clock)

    # set up and tear down ------------------------------------------------------

    def start(self):
        self.database.reset()
        if self.system.redis:
            self.flush_redis()
        self.manage("migrate", "--noinput")
        self.start_web()
        self.start_workers()

    def stop(self):
        self.stop_workers()
        stop_all([self.web], 20)
        self.database.drop()
        if self.system.redis:
            self.flush_redis()

    def manage(self, *args):
        argv = [self.python, "manage.py", *args]
        done = subprocess.run(argv, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300)
        if done.returncode:
            raise StackError(
                f"manage.py {' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}"
            )

    def fill(self, count, prefix):
        """Queue `count` messages with subjects `prefix`-<n> without going through HTTP."""
        argv = [self.python, "-m", "bench.peerbench.fill", str(count), prefix]
        done = subprocess.run(argv, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=600)
        if done.returncode:
            raise StackError(f"filling the backlog failed:\n{done.stdout[-2000:]}{done.stderr[-3000:]}")
        return [f"{prefix}-{n}" for n in range(count)]

    def flush_redis(self):
        """Empty our own Redis database number only."""
        import redis

        redis.Redis.from_url(self.options.redis).flushdb()

    def start_web(self, timeout=60):
        argv = [self.python, "-m", "gunicorn", "project.wsgi", "-b", f"127.0.0.1:{self.web_port}"]
        argv += ["-w", str(self.options.web_workers)]
        log = self.folder / f"{self.system.name}-web.log"
        self.web = _spawn([*argv, "--log-level", "warning"], self.env, log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.web.poll() is not None:
                raise StackError(f"gunicorn exited with {self.web.returncode}:\n{_tail(log)}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if get("127.0.0.1", self.web_port, "/contact/").status == 200:
                    return
            time.sleep(0.2)
        raise StackError(f"gunicorn did not answer within {timeout}s:\n{_tail(log)}")

    def web_pids(self):
        return procs.tree([self.web.pid]) if self.web is not None else []

    # the worker processes --------------------------------------------------------

    def start_workers(self):
        commands = self.system.worker_commands(self.python, self.options.workers)
        log = self.folder / f"{self.system.name}-workers.log"
        self.workers = [_spawn(argv, self.env, log, new_session=True) for argv in commands]

    def worker_pids(self):
        return procs.tree(process.pid for process in self.workers)

    def kill_workers(self):
        """SIGKILL every process of every worker command, all at once; returns how many."""
        killed = procs.signal_all(self.worker_pids(), signal.SIGKILL)
        for process in self.workers:
            process.wait()
        self._reap_orphans()
        self.workers = []
        return killed

    def stop_workers(self, timeout=30):
        """SIGTERM to the commands started, as a supervisor would; SIGKILL to what is left after `timeout`."""
        pids = self.worker_pids()
        procs.signal_all([process.pid for process in self.workers], signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while procs.tree(pids) and time.monotonic() < deadline:
            self._reap_orphans()
            time.sleep(0.1)
        procs.signal_all(procs.tree(pids), signal.SIGKILL)
        for process in self.workers:
            process.wait()
        self.workers = []

    def _reap_orphans(self):
        """Reap exited commands so they leave /proc (their children are re-parented, not ours)."""
        for process in self.workers:
            process.poll()

    def worker_log(self):
        return _tail(self.folder / f"{self.system.name}-workers.log")


def _spawn(argv, env, log_path, new_session=False):
    with open(log_path, "a") as log:
        return subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=new_session
        )


def _tail(path, size=3000):
    return path.read_text(errors="replace")[-size:] if path.exists() else "(no log)"


def _free_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
