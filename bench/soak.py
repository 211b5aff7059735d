"""Soak and chaos run: the whole stack under a bounded load while its processes are killed.

Usage: python bench/soak.py [--posts 5000] [--clients 8] [--workers 4] [--refuse-share 0.05]
                            [--seed 0] [--kill-every 3] [--keep] [--masters 2 [--pg URL]]

Everything lives in one temporary folder (SQLite file, socket, logs), removed at the end unless --keep:
- gunicorn serving ``project.wsgi`` on a free port of 127.0.0.1, and ``manage.py runrelieve``;
- an aiosmtpd sink in this process that refuses ``--refuse-share`` of the messages and stalls some;
- ``--clients`` threads that POST /contact/ ``--posts`` times, each with its own subject "soak <n>".

With ``--masters 2`` (or more) the run is that of several hosts sharing one PostgreSQL: each "host"
has its own gunicorn, ``runrelieve``, socket and logs, all on a fresh database made on the server
of ``--pg`` (dropped at the end); clients post to every web server in turn. Duplicates there come
only from the kills.

Meanwhile the chaos thread SIGKILLs a random child every ``--kill-every`` seconds, SIGKILLs the master
once (at a third of the load) and starts it again, kills every child at once (at half), drops the SMTP
server for a few seconds (at two thirds), freezes the master (SIGSTOP) past its call timeout (at 80 %)
and holds the database's write lock for a while (at 90 %). Before the load, a few rows are written
straight into the database stamped an hour ahead, never handed to the master: only the sweep finds
them; they count as accepted. After the load it waits until no message is pending, stops everything
and prints one table. Each accepted message counts once: pending (its row is queued, sending or
retrying), else delivered (the sink got its subject), else failed (row failed with an error kept),
else lost. Duplicates are the extra receipts of a subject, which at-least-once allows after a kill
of a child or of the master in the middle of a send.

Exit status 1 when a message is lost or still pending, a POST got no 202, or a log says "database is
locked". The last line is for scripts:
``soak accepted=<n> delivered=<n> failed=<n> pending=<n> lost=<n> duplicates=<n>``.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import argparse
import contextlib
import http.client
import json
import os
import random
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlencode

from relieve_app.pool.framing import FrameDecoder, encode
from tests.hostile_bodies import HOSTILE_BODIES
from tests.processes import stop_all
from tests.smtp_sink import SMTPSink, free_port
from tests.web_client import get

PENDING = ("queued", "sending", "retrying")
BODY = "Soak message {n}: some **Markdown**, a list\n\n- one\n- two\n\nand [a link](https://example.com)."
# Every HOSTILE_EVERY-th post has a body Markdown would take minutes on or recurse over: sent as text.
HOSTILE = tuple(HOSTILE_BODIES.values())
HOSTILE_EVERY = 50
LOCKED = "database is locked"
TRACEBACK = "Traceback (most recent call last)"
ENDED = "traceback ended with: "
MAIL_TASK = "relieve_app.contact.mailtask.send_contact_mail"  # what the contact view enqueues
UNHANDED = "stays queued"  # the view could not hand a message over


class SoakError(Exception):
    """The stack could not be set up or brought back; the message says which part."""


@dataclass
class Config:
    posts: int = 5000
    clients: int = 8
    workers: int = 4  # runrelieve children
    web_workers: int = 2  # gunicorn workers
    refuse_share: float = 0.05
    stall: float = 0.2  # seconds a stalled message waits for its answer
    stall_share: float = 0.05
    seed: int = 0
    kill_every: float = 3.0
    child_kills: int | None = None  # exactly this many (spaced by kill_every), else one per kill_every
    master_kill_at: float = 1 / 3  # share of the posts answered
    master_down: float = 1.0
    smtp_drop_at: float = 2 / 3
    smtp_down: float = 3.0
    max_attempts: int = 5
    retry_delay: float = 0.5  # 0.5 + 1 + 2 + 4: attempts outlast the SMTP outage
    sweep_interval: float = 2.0
    call_timeout: float = 10.0
    all_kill_at: float = 1 / 2  # every child SIGKILLed at once
    freeze_at: float = 0.8  # the master SIGSTOPped for call_timeout + 1 s, then SIGCONT
    db_lock_at: float = 0.9  # another process holds the SQLite write lock this long
    db_lock_for: float = 2.0
    ahead: int = 5  # rows stamped an hour ahead of every clock, left for the sweep
    drain_timeout: float = 120.0
    folder: Path | None = None  # a temporary folder unless given
    keep: bool = False
    masters: int = 1  # more than one: as many hosts (gunicorn + runrelieve) on one PostgreSQL
    pg: str = "postgres://postgres@127.0.0.1:5432/relieve_soak"  # its name gets the pid appended


# the stack ----------------------------------------------------------------------


def master_request(path, op, timeout=2.0, **args):
    """One operation on the master's socket, framed as relieve_app.tasks.client does; returns its result."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(encode({"op": op, "args": args}))
        decoder = FrameDecoder()
        frames = []
        while not frames:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("the master closed the connection without answering")
            frames = decoder.feed(data)
    reply = frames[0]
    if not isinstance(reply, dict) or reply.get("ok") is not True:
        raise ConnectionError(f"the master refused {op}: {reply!r:.200}")
    return reply["result"]


class Host:
    """One host's processes: gunicorn and runrelieve, with their own socket and logs."""

    def __init__(self, folder, index):
        suffix = "" if index == 0 else str(index)  # the first host's logs keep their plain names
        self.name = f"host{index}"
        self.socket_path = str(folder / f"relieve{suffix}.sock")
        self.master_log = folder / f"master{suffix}.log"
        self.web_log = folder / f"web{suffix}.log"
        self.web_port = free_port()
        self.master = None
        self.web = None


class Stack:
    """gunicorn and runrelieve as processes, the SMTP sink in this process.

    One host on a SQLite file; with ``masters`` > 1, that many hosts on one PostgreSQL database.
    """

    def __init__(self, config, folder):
        self.config = config
        self.folder = folder
        self.hosts = [Host(folder, index) for index in range(config.masters)]
        self.db_path = folder / "soak.sqlite3"
        self.pg = None
        if config.masters > 1:
            url = urllib.parse.urlsplit(config.pg)
            self.pg = url._replace(path=f"{url.path}_{os.getpid()}").geturl()
        self.sink = SMTPSink(
            refuse_share=config.refuse_share,
            stall=config.stall,
            stall_share=config.stall_share,
            seed=config.seed,
        )
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DEBUG": "true",  # Django logs a 500's traceback to the console only with DEBUG on
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": self.pg or f"sqlite:///{self.db_path}",
            "EMAIL_URL": f"smtp://{self.sink.host}:{self.sink.port}",
            "EMAIL_TIMEOUT": "5",
            "CONTACT_RECIPIENT": "owner@example.com",
            "CONTACT_RATE_LIMIT": "",
            "RELIEVE_WORKERS": str(config.workers),
            "RELIEVE_MAX_ATTEMPTS": str(config.max_attempts),
            "RELIEVE_RETRY_DELAY": str(config.retry_delay),
            "RELIEVE_SWEEP_INTERVAL": str(config.sweep_interval),
            "RELIEVE_CALL_TIMEOUT": str(config.call_timeout),
            "RELIEVE_GRACE": "3",
            # The sink counts contact mail by subject; the owner's failure notices would be strays.
            "RELIEVE_FAILURE_NOTIFY": "",
            # A killed master's rows move to the others after this lease; a frozen one keeps them.
            "RELIEVE_HEARTBEAT": "1",
            "RELIEVE_LEASE": str(config.call_timeout + 5),
        }

    @property
    def web_ports(self):
        return [host.web_port for host in self.hosts]

    def start(self):
        self.sink.start()
        if self.pg:
            _database(self.pg, "CREATE")
        self.migrate()
        for host in self.hosts:
            self.start_master(host)
            self.start_web(host)

    def migrate(self):
        argv = [sys.executable, "manage.py", "migrate", "--noinput"]
        done = subprocess.run(argv, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise SoakError(f"migrate failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def start_master(self, host=None, timeout=60):
        host = host or self.hosts[0]
        # The mail queue gets the children; the default queue, idle here, one.
        workers = ["--workers", str(self.config.workers), "--queue", "default=1"]
        argv = [sys.executable, "manage.py", "runrelieve", *workers, "--socket", host.socket_path]
        env = {"RELIEVE_SOCKET": host.socket_path, "RELIEVE_HOST": host.name}
        host.master = self._spawn(argv, host.master_log, env)
        status = lambda: master_request(host.socket_path, "status")  # noqa: E731
        self._wait(host.master, "runrelieve", host.master_log, timeout, status)

    @property
    def master(self):
        """The first host's master: the one the chaos freezes and kills."""
        return self.hosts[0].master

    def insert_ahead(self, count):
        """Rows as a web host with a clock an hour ahead writes them, never handed to the master."""
        if self.pg:
            return {}  # written through SQLite here; the run on PostgreSQL goes without them
        now = time.time()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now))
        ahead = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now + 3600))
        rows = {}
        with contextlib.closing(sqlite3.connect(self.db_path, timeout=20)) as db, db:
            for n in range(count):
                subject = f"ahead {n}"
                job = {"emitter": f"ahead{n}@example.org", "recipient": "owner@example.com"}
                job.update(subject=subject, body=BODY.format(n=n))
                task = db.execute(  # the message's mail task, as the view enqueues it
                    "INSERT INTO relieve_app_taskrecord (task_path, queue_name, backend, priority,"
                    " takes_context, args, kwargs, status, errors, worker_ids, owner, enqueued_at,"
                    " updated_at)"
                    " VALUES (?, 'mail', 'default', 0, 0, ?, '{}', 'READY', '[]', '[]', '', ?, ?)",
                    (MAIL_TASK, json.dumps([job]), ahead, ahead),
                )
                cursor = db.execute(
                    "INSERT INTO relieve_app_mailoutcome (reference, emitter, recipient, subject, body,"
                    " status, attempts, task_name, message, error, created_at, updated_at, task_result_id)"
                    " VALUES (?, ?, 'owner@example.com', ?, ?, 'queued', 0, '', '', '', ?, ?, ?)",
                    # A reference as the view makes them (contact/references.py): 32 random characters.
                    (
                        secrets.token_urlsafe(24),
                        job["emitter"],
                        subject,
                        job["body"],
                        stamp,
                        ahead,
                        task.lastrowid,
                    ),
                )
                rows[cursor.lastrowid] = subject
        return rows

    def kill_master(self):
        """SIGKILL the first host's master; with several, the others take its rows over."""
        self.hosts[0].master.kill()
        self.hosts[0].master.wait()

    def start_web(self, host, timeout=60):
        port = host.web_port
        argv = [sys.executable, "-m", "gunicorn", "project.wsgi", "-b", f"127.0.0.1:{port}"]
        env = {"RELIEVE_SOCKET": host.socket_path, "RELIEVE_HOST": host.name}
        host.web = self._spawn([*argv, "-w", str(self.config.web_workers)], host.web_log, env)
        answers = lambda: get("127.0.0.1", port, "/contact/").status == 200  # noqa: E731
        self._wait(host.web, "gunicorn", host.web_log, timeout, answers)

    def status(self):
        """The children of every master that answers."""
        children = []
        for host in self.hosts:
            with contextlib.suppress(OSError):
                children += master_request(host.socket_path, "status")["children"]
        if not children:
            raise OSError("no master answers")
        return {"children": children}

    def read_rows(self):
        return read_rows(self.pg or self.db_path)

    def logs(self):
        return {
            name: scan_log(path)
            for host in self.hosts
            for name, path in ((host.master_log.stem, host.master_log), (host.web_log.stem, host.web_log))
        }

    def stop(self):
        stop_all([process for host in self.hosts for process in (host.web, host.master)])
        self.sink.stop()

    def drop(self):
        if self.pg:
            _database(self.pg, "DROP")

    def _spawn(self, argv, log_path, env):
        with open(log_path, "a") as log:
            return subprocess.Popen(
                argv, cwd=ROOT, env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT
            )

    @staticmethod
    def _wait(process, name, log_path, timeout, answers):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SoakError(f"{name} exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if answers():
                    return
            time.sleep(0.1)
        raise SoakError(f"{name} did not answer within {timeout}s:\n{log_path.read_text()[-3000:]}")


def _database(url, verb):
    """CREATE or DROP the database of `url`, from the server's `postgres` database."""
    import psycopg
    from psycopg import sql

    parts = urllib.parse.urlsplit(url)
    name = parts.path.lstrip("/")
    with psycopg.connect(parts._replace(path="/postgres").geturl(), autocommit=True) as conn:
        if verb == "DROP":
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        else:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


# the load -----------------------------------------------------------------------


class Load:
    """Client threads posting the contact form, JSON answers, until every number was posted once."""

    def __init__(self, ports, posts, clients):
        self.ports = list(ports)  # client n posts to ports[n % len(ports)]
        self.posts = posts
        self.clients = clients
        self.accepted = {}  # outcome id -> subject
        self.not_accepted = Counter()  # HTTP status or exception name -> count
        self.answered = 0
        self._numbers = iter(range(posts))
        self._lock = threading.Lock()

    def run(self):
        threads = [
            threading.Thread(
                target=self._client, args=(self.ports[i % len(self.ports)],), name=f"soak-client{i}"
            )
            for i in range(self.clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _next(self):
        with self._lock:
            return next(self._numbers, None)

    def _client(self, port):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        token = _csrf_token(get("127.0.0.1", port, "/contact/"))
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            "Cookie": f"csrftoken={token}",
            "X-CSRFToken": token,
        }
        while (n := self._next()) is not None:
            subject = f"soak {n}"
            form = {"emitter": f"visitor{n}@example.org", "subject": subject, "body": soak_body(n)}
            try:
                conn.request("POST", "/contact/", urlencode(form), headers)
                response = conn.getresponse()
                content = response.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self._answer(None, type(exc).__name__)
                continue
            if response.status == 202:
                self._answer(json.loads(content)["id"], subject)
            else:
                self._answer(None, response.status)
        conn.close()

    def _answer(self, outcome_id, what):
        with self._lock:
            self.answered += 1
            if outcome_id is None:
                self.not_accepted[what] += 1
            else:
                self.accepted[outcome_id] = what


def soak_body(n):
    if n % HOSTILE_EVERY == HOSTILE_EVERY - 1:
        return HOSTILE[n // HOSTILE_EVERY % len(HOSTILE)]
    return BODY.format(n=n)


def hostile_delivered(load, subjects, refused=()):
    """Of the accepted posts with a hostile body, how many the sink took or refused (its random 5xx,
    which fails the message at once): "<delivered or refused>/<accepted>". A body that held its
    child would reach the sink late or never."""
    reached = set(subjects) | set(refused)
    hostile = [s for s in load.accepted.values() if soak_body(int(s.split()[-1])) in HOSTILE]
    return f"{sum(subject in reached for subject in hostile)}/{len(hostile)}"


def _csrf_token(response):
    for name, value in response.getheaders():
        if name.lower() == "set-cookie" and value.startswith("csrftoken="):
            return value.split(";", 1)[0].split("=", 1)[1]
    raise SoakError("GET /contact/ set no csrftoken cookie")


# the chaos ----------------------------------------------------------------------


class Chaos(threading.Thread):
    """Kills children on a timer, and once each the master and the SMTP server, by load progress."""

    def __init__(self, stack, load, config):
        super().__init__(name="soak-chaos", daemon=True)
        self.stack = stack
        self.load = load
        self.config = config
        self.random = random.Random(config.seed)
        self.child_kills = 0
        self.master_kills = 0
        self.smtp_drops = 0
        self.all_kills = 0
        self.freezes = 0
        self.db_locks = 0
        self.error = None
        self._load_done = threading.Event()
        self._smtp_back_at = None
        self._thaw_at = None
        self._unlock_at = None
        self._lock = None

    def finish(self, timeout):
        """The load is over: end once the planned events happened; the SMTP server is back either way."""
        self._load_done.set()
        self.join(timeout)
        if self.is_alive() or self._smtp_back_at is not None:
            self.error = self.error or SoakError(f"chaos did not finish its plan within {timeout}s")
            self._smtp_back_at = None
            if not self.stack.sink.running:
                self.stack.sink.start()
        self.thaw()
        self.unlock_db()

    def run(self):
        try:
            self._loop()
        except Exception as exc:  # reported with the results: a chaos failure must not hang the run
            self.error = exc

    def _loop(self):
        config = self.config
        next_kill = time.monotonic() + config.kill_every
        while not self._planned_done():
            now = time.monotonic()
            progress = self.load.answered / max(self.load.posts, 1)
            if not self.master_kills and (progress >= config.master_kill_at or self._load_done.is_set()):
                self.restart_master()
            if not self.smtp_drops and (progress >= config.smtp_drop_at or self._load_done.is_set()):
                self.drop_smtp(now)
            if self._smtp_back_at is not None and now >= self._smtp_back_at:
                self.stack.sink.start()
                self._smtp_back_at = None
            if not self.all_kills and (progress >= config.all_kill_at or self._load_done.is_set()):
                self.kill_all_children()
            if not self.freezes and (progress >= config.freeze_at or self._load_done.is_set()):
                self.freeze_master(now)
            if self._thaw_at is not None and now >= self._thaw_at:
                self.thaw()
            due = progress >= config.db_lock_at or self._load_done.is_set()
            # Not while the master is frozen: it may hold the lock itself until this thread thaws it.
            # PostgreSQL has no database-wide write lock to hold.
            if not self.db_locks and due and self._thaw_at is None and not self.stack.pg:
                self.lock_db(now)
            if self._unlock_at is not None and now >= self._unlock_at:
                self.unlock_db()
            wanted = config.child_kills is None or self.child_kills < config.child_kills
            if wanted and now >= next_kill:
                self.kill_child()
                next_kill = now + config.kill_every
            time.sleep(0.05)

    def _planned_done(self):
        kills_done = self.config.child_kills is None or self.child_kills >= self.config.child_kills
        return (
            self._load_done.is_set()
            and self.master_kills
            and self.smtp_drops
            and self._smtp_back_at is None
            and self.all_kills
            and self.freezes
            and self._thaw_at is None
            and (self.db_locks or self.stack.pg)
            and self._unlock_at is None
            and kills_done
        )

    def kill_child(self):
        try:
            children = self.stack.status()["children"]
        except OSError:
            return  # the master is down or busy: try at the next tick
        running = [c for c in children if c["running"] and c["pid"] and c.get("queue", "mail") == "mail"]
        if running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.random.choice(running)["pid"], signal.SIGKILL)
                self.child_kills += 1

    def kill_all_children(self):
        """Every child at once: jobs posted before they are back must go out when they are."""
        try:
            children = self.stack.status()["children"]
        except OSError:
            return
        for child in children:
            if child["running"] and child["pid"]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child["pid"], signal.SIGKILL)
        self.all_kills += 1

    def freeze_master(self, now):
        """SIGSTOP past the call timeout: the answers children give meanwhile must not be resent."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.stack.master.pid, signal.SIGSTOP)
        self.freezes += 1
        self._thaw_at = now + self.config.call_timeout + 1.0

    def thaw(self):
        if self._thaw_at is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.stack.master.pid, signal.SIGCONT)
            self._thaw_at = None

    def lock_db(self, now):
        """Another process holds SQLite's write lock: outcome writes wait, none is dropped."""
        self._lock = sqlite3.connect(
            self.stack.db_path, timeout=20, isolation_level=None, check_same_thread=False
        )
        self._lock.execute("BEGIN EXCLUSIVE")
        self.db_locks += 1
        self._unlock_at = now + self.config.db_lock_for

    def unlock_db(self):
        if self._lock is not None:
            with contextlib.suppress(sqlite3.Error):  # a BEGIN that failed left nothing to roll back
                self._lock.execute("ROLLBACK")
            self._lock.close()
            self._lock = None
        self._unlock_at = None

    def restart_master(self):
        self.stack.kill_master()
        self.master_kills += 1
        time.sleep(self.config.master_down)
        self.stack.start_master()

    def drop_smtp(self, now):
        self.stack.sink.stop()
        self.smtp_drops += 1
        self._smtp_back_at = now + self.config.smtp_down


# the accounting -----------------------------------------------------------------


@dataclass
class Result:
    config: Config
    accepted: int = 0
    delivered: int = 0
    failed: int = 0
    pending: int = 0
    lost: int = 0
    duplicates: int = 0
    not_accepted: Counter = field(default_factory=Counter)
    failed_without_error: int = 0
    delivered_not_sent: int = 0
    strays: int = 0  # receipts of a subject no 202 answered for
    refused_by_sink: int = 0
    attempts: int = 0
    child_kills: int = 0
    master_kills: int = 0
    smtp_drops: int = 0
    all_kills: int = 0
    freezes: int = 0
    db_locks: int = 0
    ahead: int = 0
    failed_at_once: int = 0  # failed on the first attempt: a permanent (5xx) refusal
    chaos_error: str = ""
    load_seconds: float = 0.0
    drain_seconds: float = 0.0
    logs: dict = field(default_factory=dict)  # log name -> Counter of what it says
    folder: Path | None = None
    hostile: str = ""  # "<delivered>/<accepted>" of the posts with a hostile body

    @property
    def locked(self):
        return sum(counts[LOCKED] for counts in self.logs.values())

    @property
    def ok(self):
        return not (self.lost or self.pending or self.locked or self.not_accepted or self.chaos_error)

    def table(self):
        c = self.config
        rate = self.accepted / self.load_seconds if self.load_seconds else 0.0
        rows = [
            ("accepted (202)", self.accepted),
            ("delivered", self.delivered),
            ("failed with error recorded", self.failed),
            ("still pending", self.pending),
            ("lost", self.lost),
            ("duplicates delivered", self.duplicates),
            ("", ""),
            ("POSTs not accepted", dict(self.not_accepted) or 0),
            ("  of the lost: failed without error", self.failed_without_error),
            ("delivered, row not 'sent'", self.delivered_not_sent),
            ("delivered, never accepted", self.strays),
            ("refused by the sink", self.refused_by_sink),
            ("send attempts", self.attempts),
            ("children killed", self.child_kills),
            ("master killed and restarted", self.master_kills),
            ("SMTP server dropped", self.smtp_drops),
            ("every child killed at once", self.all_kills),
            (f"master frozen past the call timeout ({self.config.call_timeout + 1:g}s)", self.freezes),
            (f"database write lock held {self.config.db_lock_for:g}s", self.db_locks),
            ("rows stamped 1h ahead, left to the sweep", self.ahead),
            ("failed at the first attempt (5xx)", self.failed_at_once),
            (
                "POSTs left for the sweep",
                sum(c[UNHANDED] for n, c in self.logs.items() if n.startswith("web")),
            ),
            ("hostile Markdown bodies sent or refused by the sink", self.hostile or 0),
        ]
        for name, counts in self.logs.items():
            rows.append((f'{name}.log "{LOCKED}"', counts[LOCKED]))
            rows.append((f"{name}.log tracebacks", counts[TRACEBACK]))
        lines = [
            f"soak: {c.posts} posts from {c.clients} clients, {c.masters} master(s) of {c.workers} children "
            f"({'PostgreSQL' if c.masters > 1 else 'SQLite'}), refuse share "
            f"{c.refuse_share:g}, seed {c.seed}; load {self.load_seconds:.1f}s ({rate:.0f}/s), "
            f"drain {self.drain_seconds:.1f}s",
        ]
        if self.chaos_error:
            lines.append(f"chaos error: {self.chaos_error}")
        if self.folder is not None:
            lines.append(f"folder kept: {self.folder}")
        width = max(len(name) for name, _ in rows)
        rule = "  " + "-" * (width + 9)
        lines += [f"  {name:<{width}} {value!s:>8}" if name else rule for name, value in rows]
        for name, counts in self.logs.items():
            ended = [(line, count) for line, count in counts.items() if line.startswith(ENDED)]
            lines += [f"  {name}.log, {count}x {line.removeprefix(ENDED)}" for line, count in ended]
        return "\n".join(lines)

    def last_line(self):
        return (
            f"soak accepted={self.accepted} delivered={self.delivered} failed={self.failed} "
            f"pending={self.pending} lost={self.lost} duplicates={self.duplicates}"
        )


def read_rows(database):
    """Every outcome: id -> (status, error, attempts); `database` is a SQLite path or a PostgreSQL URL."""
    query = "SELECT id, status, error, attempts FROM relieve_app_mailoutcome"
    if isinstance(database, str) and database.startswith("postgres"):
        import psycopg

        with psycopg.connect(database) as db:
            return {row[0]: row[1:] for row in db.execute(query)}
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=20)) as db:
        return {row[0]: row[1:] for row in db.execute(query)}


def drain(stack, timeout):
    """Wait until no row is pending; returns the seconds it took (or the timeout)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not any(status in PENDING for status, _error, _attempts in stack.read_rows().values()):
            break
        time.sleep(0.5)
    return time.monotonic() - started


def scan_log(path):
    """How often a log says "database is locked" or a hand-over failed, its tracebacks and their ends."""
    counts = Counter()
    in_traceback = False
    for line in path.read_text(errors="replace").splitlines() if path.exists() else ():
        if LOCKED in line.lower():
            counts[LOCKED] += 1
        if UNHANDED in line:
            counts[UNHANDED] += 1
        if TRACEBACK in line:
            counts[TRACEBACK] += 1
            in_traceback = True
        elif in_traceback and line and not line[0].isspace():
            counts[ENDED + line[:160]] += 1
            in_traceback = False
    return counts


def account(result, load, rows, subjects):
    """Fill the table: each accepted message lands in exactly one of the first five rows."""
    received = Counter(subjects)
    result.accepted = len(load.accepted)
    result.not_accepted = load.not_accepted
    for outcome_id, subject in load.accepted.items():
        status, error, attempts = rows.get(outcome_id, ("<no row>", "", 0))
        if status in PENDING:
            result.pending += 1
        elif received[subject]:
            result.delivered += 1
            result.delivered_not_sent += status != "sent"
        elif status == "failed" and error:
            result.failed += 1
            result.failed_at_once += attempts == 1
        else:
            result.lost += 1
            result.failed_without_error += status == "failed"
        result.duplicates += max(received[subject] - 1, 0)
    accepted_subjects = set(load.accepted.values())
    result.strays = sum(count for subject, count in received.items() if subject not in accepted_subjects)
    result.attempts = sum(attempts for _status, _error, attempts in rows.values())
    return result


# the run ------------------------------------------------------------------------


def run(config, out=print):
    """Set up, load, disturb, drain, account; returns the Result (its table is printed through out)."""
    folder = Path(config.folder or tempfile.mkdtemp(prefix="soak-"))
    folder.mkdir(parents=True, exist_ok=True)
    stack = Stack(config, folder)
    result = Result(config, folder=folder if config.keep else None)
    try:
        stack.start()
        load = Load(stack.web_ports, config.posts, config.clients)
        ahead = stack.insert_ahead(config.ahead)
        load.accepted.update(ahead)
        result.ahead = len(ahead)
        chaos = Chaos(stack, load, config)
        started = time.monotonic()
        chaos.start()
        load.run()
        result.load_seconds = time.monotonic() - started
        chaos.finish(timeout=config.kill_every * (config.child_kills or 0) + config.smtp_down + 120)
        result.drain_seconds = drain(stack, config.drain_timeout)
    except SoakError as exc:
        raise SoakError(f"{exc}\n(database and logs kept in {folder})") from None
    finally:
        stack.stop()
    result.child_kills, result.master_kills, result.smtp_drops = (
        chaos.child_kills,
        chaos.master_kills,
        chaos.smtp_drops,
    )
    result.all_kills, result.freezes, result.db_locks = chaos.all_kills, chaos.freezes, chaos.db_locks
    result.chaos_error = repr(chaos.error) if chaos.error else ""
    result.refused_by_sink = stack.sink.refused
    result.logs = stack.logs()
    subjects = [str(message["Subject"]) for message in stack.sink.messages]
    try:
        account(result, load, stack.read_rows(), subjects)
    finally:
        stack.drop()
    result.hostile = hostile_delivered(load, subjects, stack.sink.refused_subjects)
    if config.keep:
        (folder / "received.txt").write_text("".join(f"{subject}\n" for subject in subjects))
    else:
        shutil.rmtree(folder, ignore_errors=True)
    out(result.table())
    out(result.last_line())
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=5000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4, help="runrelieve children")
    parser.add_argument("--refuse-share", dest="refuse_share", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kill-every", dest="kill_every", type=float, default=3.0, help="seconds")
    parser.add_argument("--keep", action="store_true", help="keep the folder with the database and logs")
    parser.add_argument("--masters", type=int, default=1, help="hosts, each with gunicorn and runrelieve")
    parser.add_argument("--pg", default=Config.pg, help="PostgreSQL for --masters 2 or more")
    options = parser.parse_args(argv)
    try:
        result = run(Config(**vars(options)))
    except SoakError as exc:
        print(f"soak: {exc}", file=sys.stderr)
        return 2
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
