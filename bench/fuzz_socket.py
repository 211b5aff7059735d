"""Throw bad input at a real relieve master's Unix socket and check it keeps serving.

Usage: python bench/fuzz_socket.py [--inputs 5000] [--seed 0] [--workers 2] [--client-timeout 2] [--keep]

Starts its own ``manage.py runrelieve`` on a temporary socket, against a fresh SQLite database
(migrated here) and the SMTP sink of ``tests/smtp_sink.py``; plays the inputs of
``tests/e2e/socket_inputs.py`` (the e2e fuzz test uses the same ones), each on its own connection,
and after every one a good client pings. At the end a real row is submitted and must reach the
sink, and the master must stop cleanly on SIGTERM with no traceback in its log.

The last line is for scripts:
``fuzz-socket inputs=<n> errors-answered=<n> closed=<n> crashes=<n> ping-failures=<n>`` where
errors-answered counts inputs that got at least one error reply, closed those the master closed
without any reply (truncated frames), and the rest got only ok replies. Exit status 1 when the
master crashed, missed a ping, broke the protocol or lost the real message.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import argparse
import collections
import os
import signal
import subprocess
import tempfile
import time

from tests.e2e import socket_inputs
from tests.smtp_sink import SMTPSink


class Master:
    """One ``manage.py runrelieve`` on its own database and socket, logging to a file."""

    def __init__(self, folder, sink, options):
        self.socket_path = str(folder / "r.sock")
        self.log_path = folder / "master.log"
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "project.settings",
            "DATABASE_URL": f"sqlite:///{folder / 'db.sqlite3'}",
            "EMAIL_URL": f"smtp://{sink.host}:{sink.port}",
            "EMAIL_TIMEOUT": "5",
            "RELIEVE_SOCKET": self.socket_path,
            "RELIEVE_CLIENT_TIMEOUT": str(options.client_timeout),
            "RELIEVE_SWEEP_INTERVAL": "1",
        }
        self.workers = options.workers
        self.process = None

    def migrate(self):
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
        )

    def start(self, timeout=30):
        with open(self.log_path, "a") as log:
            argv = [sys.executable, "manage.py", "runrelieve", "--workers", str(self.workers)]
            argv += ["--socket", self.socket_path]
            self.process = subprocess.Popen(
                argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"runrelieve exited with {self.process.returncode}:\n{self.output()}")
            if os.path.exists(self.socket_path) and socket_inputs.ping(self.socket_path):
                return
            time.sleep(0.05)
        raise SystemExit(f"runrelieve did not answer within {timeout}s:\n{self.output()}")

    @property
    def alive(self):
        return self.process.poll() is None

    def stop(self, timeout=20):
        if not self.alive:
            return self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def output(self):
        return self.log_path.read_text() if self.log_path.exists() else ""


def deliver_one(master, sink, timeout=30):
    """Store a message and its mail task as the contact view does; True once the sink has it."""
    os.environ.update(
        {key: master.env[key] for key in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "RELIEVE_SOCKET")}
    )
    import django

    django.setup()
    from relieve_app.contact.views import enqueue

    # Handed over on commit; were the master to refuse it, its sweep would take the task.
    enqueue({"emitter": "fuzz@example.org", "subject": "after the fuzz", "body": "still *here*"})
    try:
        sink.wait_for(1, timeout)
    except TimeoutError:
        return False
    return any(message["Subject"] == "after the fuzz" for message in sink.messages)


def fuzz(master, count, seed, verbose):
    counts = collections.Counter()
    kinds = collections.Counter()
    mismatches = []
    for item in socket_inputs.inputs(count, seed):
        counts["inputs"] += 1
        kinds[item.kind] += 1
        try:
            result = socket_inputs.throw(master.socket_path, item)
        except OSError as exc:  # could not even connect
            result = None
            mismatches.append((item, [f"connect failed: {exc}"]))
        if result is not None:
            found = socket_inputs.problems(item, result)
            if found:
                mismatches.append((item, found))
            if result.errors:
                counts["errors-answered"] += 1
            elif not result.replies:
                counts["closed"] += 1
            else:
                counts["ok-answered"] += 1
        if not socket_inputs.ping(master.socket_path):
            counts["ping-failures"] += 1
        if not master.alive:
            counts["crashes"] += 1
            print(
                f"master died after input {counts['inputs']}: {socket_inputs.describe(item)}", file=sys.stderr
            )
            break
        if verbose and counts["inputs"] % 500 == 0:
            print(f"{counts['inputs']} inputs ...", file=sys.stderr)
    return counts, kinds, mismatches


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--client-timeout", dest="client_timeout", type=float, default=2.0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (log, database)")
    parser.add_argument("--verbose", action="store_true")
    options = parser.parse_args(argv)

    folder = Path(tempfile.mkdtemp(prefix="relieve-fuzz-"))
    started = time.monotonic()
    with SMTPSink() as sink:
        master = Master(folder, sink, options)
        master.migrate()
        master.start()
        rss_before = socket_inputs.peak_rss_kib(master.process.pid)
        counts, kinds, mismatches = fuzz(master, options.inputs, options.seed, options.verbose)
        rss_after = socket_inputs.peak_rss_kib(master.process.pid)
        delivered = master.alive and deliver_one(master, sink)
        code = master.stop()
    output = master.output()
    if "Traceback" in output:
        counts["crashes"] += 0 if counts["crashes"] else 1
    for item, found in mismatches[:20]:
        print(f"mismatch: {socket_inputs.describe(item)}: {'; '.join(found)}", file=sys.stderr)
    if "Traceback" in output or code != 0:
        print(f"master exit code {code}; log:\n{output[-5000:]}", file=sys.stderr)
    print("kinds: " + " ".join(f"{kind}={n}" for kind, n in sorted(kinds.items())))
    growth = (rss_after or 0) - (rss_before or 0)
    print(
        f"ok-answered={counts['ok-answered']} mismatches={len(mismatches)} real-row-delivered={delivered} "
        f"exit-code={code} peak-rss-growth-kib={growth} seconds={time.monotonic() - started:.1f} "
        f"folder={folder if options.keep else '(removed)'}"
    )
    if not options.keep:
        for path in sorted(folder.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        folder.rmdir()
    print(
        f"fuzz-socket inputs={counts['inputs']} errors-answered={counts['errors-answered']} "
        f"closed={counts['closed']} crashes={counts['crashes']} ping-failures={counts['ping-failures']}"
    )
    failed = counts["crashes"] or counts["ping-failures"] or mismatches or not delivered or code != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
