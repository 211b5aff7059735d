"""Scale-out: mail delivered per second by one master and by two, and the latency of a host without one.

Usage: python bench/scale.py [--messages 400] [--workers 4] [--stall 0.1] [--latency-posts 30]
                             [--pg postgres://postgres@127.0.0.1:5432/relieve_scale]

Everything runs on a fresh PostgreSQL database made on the server of ``--pg`` (its name gets the
pid appended; dropped at the end) and one SMTP sink in this process that answers every message
after ``--stall`` seconds, as a distant mail server does. Each master is a ``runrelieve`` with its
own socket and ``--workers`` mail children, as on its own host.

1. Throughput. ``--messages`` contact messages are enqueued in one transaction (NOTIFY wakes the
   masters on commit; no socket leads to them), first with one master running, then with two.
   Delivered per second is counted between the first and the last message the sink received.
   Sends wait on the network, so two masters should deliver about twice as much.
2. Remote latency. A gunicorn whose socket leads to no master (a host without one) takes
   ``--latency-posts`` posts, one at a time; each is timed from the POST to the sink's receipt.

The last line is for scripts:
``scale masters=2 delivered-per-s-1=<n> delivered-per-s-2=<n> ratio=<r> remote-p50-ms=<ms>``.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import argparse
import http.client
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from urllib.parse import urlencode

from bench.soak import SoakError, Stack, _csrf_token, _database, master_request
from tests.processes import stop_all
from tests.smtp_sink import SMTPSink, free_port
from tests.web_client import get

ENQUEUE = """
from django.db import transaction
from relieve_app.contact import views
with transaction.atomic():
    for n in range({count}):
        views.enqueue({{"emitter": f"v{{n}}@example.org", "subject": f"{prefix} {{n}}", "body": "x" * 40}})
"""


@dataclass
class Config:
    messages: int = 400
    workers: int = 4
    stall: float = 0.1
    latency_posts: int = 30
    pg: str = "postgres://postgres@127.0.0.1:5432/relieve_scale"


class Bench:
    def __init__(self, config, folder):
        self.config = config
        self.folder = folder
        url = urllib.parse.urlsplit(config.pg)
        self.pg = url._replace(path=f"{url.path}_{os.getpid()}").geturl()
        self.sink = SMTPSink(stall=config.stall)
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "ALLOWED_HOSTS": "127.0.0.1",
            "DATABASE_URL": self.pg,
            "EMAIL_URL": f"smtp://{self.sink.host}:{self.sink.port}",
            "CONTACT_RECIPIENT": "owner@example.com",
            "CONTACT_RATE_LIMIT": "",
            "RELIEVE_SOCKET": str(folder / "nobody.sock"),  # the web side reaches no master
            "RELIEVE_LOG_LEVEL": "ERROR",
            "RELIEVE_SWEEP_INTERVAL": "300",  # only NOTIFY, never the sweep, hands the work out
        }
        self.processes = []

    def spawn(self, argv, log, **env):
        with open(self.folder / log, "a") as out:
            process = subprocess.Popen(
                argv, cwd=ROOT, env={**self.env, **env}, stdout=out, stderr=subprocess.STDOUT
            )
        self.processes.append(process)
        return process

    def start_master(self, index):
        sock = str(self.folder / f"master{index}.sock")
        queues = ["--workers", str(self.config.workers), "--queue", "default=1"]
        argv = [sys.executable, "manage.py", "runrelieve", *queues, "--socket", sock]
        process = self.spawn(argv, f"master{index}.log", RELIEVE_HOST=f"host{index}")
        Stack._wait(
            process,
            "runrelieve",
            self.folder / f"master{index}.log",
            60,
            lambda: master_request(sock, "ping"),
        )
        return process

    def start_web(self):
        port = free_port()
        argv = [sys.executable, "-m", "gunicorn", "project.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2"]
        process = self.spawn(argv, "web.log")
        Stack._wait(
            process,
            "gunicorn",
            self.folder / "web.log",
            60,
            lambda: get("127.0.0.1", port, "/contact/").status == 200,
        )
        return port

    def throughput(self, prefix):
        """Delivered per second, between the sink's first and last receipt of a burst of messages."""
        count = self.config.messages
        self.sink.clear()
        code = ENQUEUE.format(count=count, prefix=prefix)
        done = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", code],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise SoakError(f"enqueueing failed:\n{done.stderr[-2000:]}")
        self.sink.wait_for(count, timeout=count * self.config.stall + 120)
        first, last = self.sink.received_at[0], self.sink.received_at[-1]
        return (count - 1) / (last - first)

    def remote_latency(self, port):
        """Seconds from each POST on a host without a master to the sink's receipt, one at a time."""
        token = _csrf_token(get("127.0.0.1", port, "/contact/"))
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            "Cookie": f"csrftoken={token}",
            "X-CSRFToken": token,
        }
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        took = []
        try:
            for n in range(self.config.latency_posts):
                form = {"emitter": f"r{n}@example.org", "subject": f"remote {n}", "body": "x" * 40}
                self.sink.clear()
                started = time.monotonic()
                conn.request("POST", "/contact/", urlencode(form), headers)
                response = conn.getresponse()
                response.read()
                if response.status != 202:
                    raise SoakError(f"POST answered {response.status}")
                self.sink.wait_for(1, timeout=30)
                took.append(self.sink.received_at[0] - started)
        finally:
            conn.close()
        return took

    def stop(self):
        stop_all(self.processes)
        self.processes = []


def run(config, out=print):
    folder = Path(tempfile.mkdtemp(prefix="scale-"))
    bench = Bench(config, folder)
    bench.sink.start()
    _database(bench.pg, "CREATE")
    try:
        migrate = [sys.executable, "manage.py", "migrate", "--noinput"]
        subprocess.run(migrate, cwd=ROOT, env=bench.env, check=True, capture_output=True, timeout=120)
        bench.start_master(0)
        one = bench.throughput("one")
        out(f"one master, {config.workers} children: {one:.1f} delivered/s")
        bench.start_master(1)
        two = bench.throughput("two")
        out(f"two masters, {config.workers} children each: {two:.1f} delivered/s")
        took = bench.remote_latency(bench.start_web())
        p50 = statistics.median(took) * 1000
        out(f"POST on a host without a master to delivery: p50 {p50:.0f} ms, max {max(took) * 1000:.0f} ms")
    finally:
        bench.stop()
        bench.sink.stop()
        _database(bench.pg, "DROP")
        shutil.rmtree(folder, ignore_errors=True)
    out(
        f"scale masters=2 delivered-per-s-1={one:.1f} delivered-per-s-2={two:.1f} ratio={two / one:.2f} "
        f"remote-p50-ms={p50:.0f}"
    )
    return one, two, p50


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=Config.messages)
    parser.add_argument("--workers", type=int, default=Config.workers, help="mail children per master")
    parser.add_argument(
        "--stall", type=float, default=Config.stall, help="seconds the sink takes per message"
    )
    parser.add_argument("--latency-posts", dest="latency_posts", type=int, default=Config.latency_posts)
    parser.add_argument("--pg", default=Config.pg)
    run(Config(**vars(parser.parse_args(argv))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
