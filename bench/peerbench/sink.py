"""The SMTP sink every system sends to, in a process of its own, noting when each subject arrived.

The sink stands for a mail server on another host. In the benchmark's own process it would hold
that process's interpreter lock for longer the faster a system delivers, and the clients timing
the POSTs would wait for that lock: the faster system's POSTs would look slower. So it runs in a
process of its own, and answers SMTP with as little work as it can (a few lines of asyncio, no
parser), since its CPU too competes with the systems' for the machine's cores, the more so the
faster a system delivers. It writes one line a mail to its stdout (``<monotonic> <subject>``, the clock every
process of the machine shares) and takes one command a line on its stdin (``stall <seconds>``); a
thread of the benchmark reads the lines.

    python -m bench.peerbench.sink --port 2525   # what SinkProcess starts
"""

import argparse
import asyncio
import email.header
import re
import subprocess
import sys
import threading
import time
import types
from collections import defaultdict
from pathlib import Path

from bench.peerbench import procs
from tests.smtp_sink import free_port

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


class _Session(asyncio.Protocol):
    """One SMTP client's connection: every command accepted, each mail's subject written out.

    Only what a mail server's answers cost the client is kept: no address is checked and nothing is
    stored, so the sink's CPU, which stands for a server on another host, stays small beside the
    systems' own. A stalled answer holds the connection's next command until it is given.
    """

    def __init__(self, settings):
        self.settings = settings  # .stall, read at each mail
        self.buffer = bytearray()
        self.in_data = False
        self.waiting = False
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        transport.write(b"220 peerbench sink\r\n")

    def data_received(self, data):
        self.buffer += data
        self._serve()

    def _serve(self):
        while not self.waiting:
            if self.in_data:
                end = self.buffer.find(b"\r\n.\r\n")
                if end < 0:
                    return
                subject = _subject(bytes(self.buffer[:end]))
                del self.buffer[: end + 5]
                self.in_data = False
                if self.settings.stall:
                    self.waiting = True
                    asyncio.get_running_loop().call_later(self.settings.stall, self._taken, subject)
                else:
                    self._taken(subject)
                continue
            end = self.buffer.find(b"\r\n")
            if end < 0:
                return
            verb = bytes(self.buffer[:4]).upper()
            del self.buffer[: end + 2]
            self._answer(verb)

    def _answer(self, verb):
        if verb == b"EHLO":
            self.transport.write(b"250-peerbench sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n")
        elif verb == b"DATA":
            self.in_data = True
            self.transport.write(b"354 end data with <CR><LF>.<CR><LF>\r\n")
        elif verb == b"QUIT":
            self.transport.write(b"221 bye\r\n")
            self.transport.close()
        elif verb in (b"HELO", b"MAIL", b"RCPT", b"RSET", b"NOOP"):
            self.transport.write(b"250 OK\r\n")
        else:
            self.transport.write(b"502 not implemented\r\n")

    def _taken(self, subject):
        if self.transport.is_closing():
            return  # the client went away before its answer: not taken
        sys.stdout.write(f"{time.monotonic()!r} {subject}\n")
        sys.stdout.flush()
        self.transport.write(b"250 OK\r\n")
        if self.waiting:
            self.waiting = False
            self._serve()


_SUBJECT = re.compile(rb"^Subject:[ \t]*([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", re.IGNORECASE | re.MULTILINE)


def _subject(message):
    """The Subject of a mail as sent (CRLF line ends), unfolded and decoded; "" if it has none."""
    found = _SUBJECT.search(message.split(b"\r\n\r\n", 1)[0])
    if found is None:
        return ""
    value = re.sub(rb"\r\n(?=[ \t])", b"", found.group(1)).decode("utf-8", "replace")
    if "=?" in value:  # an encoded word (RFC 2047): a subject that is not plain ASCII
        value = str(email.header.make_header(email.header.decode_header(value)))
    return value


def serve(host, port):
    settings = types.SimpleNamespace(stall=0.0)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(loop.create_server(lambda: _Session(settings), host, port))
    threading.Thread(target=loop.run_forever, name="sink-loop", daemon=True).start()
    print("listening", flush=True)
    for line in sys.stdin:  # until the benchmark closes it
        command, _, value = line.strip().partition(" ")
        if command == "stall":
            settings.stall = float(value)
    loop.call_soon_threadsafe(loop.stop)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    options = parser.parse_args()
    serve(options.host, options.port)
