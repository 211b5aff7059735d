"""The SMTP sink every system sends to, in a process of its own, noting when each subject arrived.

The sink parses every mail it takes. In the benchmark's own process it would hold that process's
interpreter lock for longer the faster a system delivers, and the clients timing the POSTs would
wait for that lock: the faster system's POSTs would look slower. In its own process it costs the
machine's cores the same, and nothing of the clients' clock. It writes one line a mail to its
stdout (``<monotonic> <subject>``, the clock every process of the machine shares) and takes one
command a line on its stdin (``stall <seconds>``); a thread of the benchmark reads the lines.

    python -m bench.peerbench.sink --port 2525   # what SinkProcess starts
"""

import argparse
import asyncio
import email.parser
import email.policy
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

from bench.peerbench import procs
from tests.smtp_sink import _Controller, free_port

ROOT = Path(__file__).resolve().parents[2]


class SinkProcess:
    """The benchmark's side of the sink: its address, its arrivals, its answering delay, its CPU."""

    def __init__(self, host="127.0.0.1", stall=0.0):
        self.host = host
        self.port = free_port(host)
        self.arrivals = defaultdict(list)  # subject -> monotonic times it was received
        self.count = 0  # every mail received since the start, whatever its subject
        self._stall = stall
        self._arrived = threading.Condition()
        self._process = None
        self._reader = None

    def start(self):
        command = [sys.executable, "-m", "bench.peerbench.sink", "--host", self.host]
        command += ["--port", str(self.port)]
        self._process = subprocess.Popen(
            command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        ready = self._process.stdout.readline()
        if not ready.startswith("listening"):
            self.stop()
            raise RuntimeError(f"the SMTP sink did not start: {ready!r}")
        self._reader = threading.Thread(target=self._read, name="peerbench-sink-reader", daemon=True)
        self._reader.start()
        if self._stall:
            self.stall = self._stall
        return self

    def stop(self):
        process, self._process = self._process, None
        if process is None:
            return
        process.stdin.close()  # the sink's end of stdin: it stops
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if self._reader is not None:
            self._reader.join(timeout=10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    @property
    def pid(self):
        return self._process.pid

    @property
    def stall(self):
        return self._stall

    @stall.setter
    def stall(self, seconds):
        """Seconds the sink waits before it answers a mail's data, from the next mail on."""
        self._process.stdin.write(f"stall {seconds}\n")
        self._process.stdin.flush()
        self._stall = seconds

    def cpu_seconds(self):
        """The CPU the sink's process has spent since it started."""
        return procs.cpu_seconds([self.pid]).get(self.pid, 0.0)

    def _read(self):
        for line in self._process.stdout:
            at, _, subject = line.rstrip("\n").partition(" ")
            with self._arrived:
                self.arrivals[subject].append(float(at))
                self.count += 1
                self._arrived.notify_all()

    def wait_for(self, count, timeout):
        """Return once at least ``count`` mails arrived since the start; TimeoutError otherwise."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: self.count >= count, timeout):
                raise TimeoutError(f"the SMTP sink received {self.count} of {count} mails in {timeout} s")

    def received(self, subjects):
        with self._arrived:
            return sum(1 for subject in subjects if self.arrivals.get(subject))

    def wait_received(self, subjects, timeout, quiet=None, at_least=None):
        """Wait until `at_least` (all) of these subjects arrived, `timeout` passed, or none for `quiet` s."""
        wanted = len(subjects) if at_least is None else at_least
        deadline = time.monotonic() + timeout
        last_count, last_change = -1, time.monotonic()
        while True:
            count = self.received(subjects)
            now = time.monotonic()
            if count != last_count:
                last_count, last_change = count, now
            if count >= wanted or now >= deadline:
                return count
            if quiet is not None and now - last_change >= quiet:
                return count
            with self._arrived:
                self._arrived.wait(0.2)

    def clear(self):
        with self._arrived:
            self.arrivals.clear()


class _Handler:
    """aiosmtpd's hooks in the sink's process: each mail taken, after the stall, is one line out."""

    def __init__(self):
        self.stall = 0.0
        self._headers = email.parser.BytesHeaderParser(policy=email.policy.default)

    async def handle_DATA(self, server, session, envelope):
        if self.stall:
            await asyncio.sleep(self.stall)
        subject = str(self._headers.parsebytes(envelope.original_content)["Subject"] or "")
        sys.stdout.write(f"{time.monotonic()!r} {subject}\n")
        sys.stdout.flush()
        return "250 OK"


def serve(host, port):
    handler = _Handler()
    controller = _Controller(handler, hostname=host, port=port)
    controller.start()
    print("listening", flush=True)
    try:
        for line in sys.stdin:  # until the benchmark closes it
            command, _, value = line.strip().partition(" ")
            if command == "stall":
                handler.stall = float(value)
    finally:
        controller.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    serve(options.host, options.port)
