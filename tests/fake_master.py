"""A stand-in for the master's socket: a real AF_UNIX server in a thread, speaking the real frames."""

import contextlib
import socket
import threading
import time

import pytest

from relieve_app.pool.framing import FrameDecoder, encode


class FakeMaster:
    """Accepts connections on `path` and lets `answer(master, conn)` handle each one."""

    def __init__(self, path, answer):
        self.path = str(path)
        self.answer = answer
        self.requests = []
        self.stopped = threading.Event()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        self._listener.listen(16)
        self._listener.settimeout(0.05)
        self._thread = threading.Thread(target=self._serve, name="fake-master", daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self.stopped.set()
        self._thread.join(5)
        self._listener.close()

    def receive(self, conn):
        """Read one request frame, remember it and return it (None when the client went away)."""
        decoder = FrameDecoder()
        conn.settimeout(5)
        while data := conn.recv(65536):
            if frames := decoder.feed(data):
                self.requests.append(frames[0])
                return frames[0]
        return None

    def _serve(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(OSError):
                self.answer(self, conn)


def acknowledge(master, conn):
    request = master.receive(conn)
    conn.sendall(encode({"ok": True, "result": {"queued": request["args"].get("id")}}))


def refuse(master, conn):
    master.receive(conn)
    error = {"type": "UnknownOperation", "message": "no such operation"}
    conn.sendall(encode({"ok": False, "error": error}))


def stay_silent(master, conn):
    master.receive(conn)
    master.stopped.wait(10)


def hang_up(master, conn):
    """Close at once, before reading anything."""


def acknowledge_each(master, conn):
    """Answer every frame of a connection, as the real master does, and count the connection."""
    master.connections = getattr(master, "connections", 0) + 1
    decoder = FrameDecoder()
    conn.settimeout(5)
    while data := conn.recv(65536):
        for frame in decoder.feed(data):
            master.requests.append(frame)
            if frame.get("reply") is not False:
                conn.sendall(encode({"ok": True, "result": {"queued": frame["args"].get("id")}}))


def announced(master, tasks, timeout=5.0):
    """Whether the stand-in read exactly the submits enqueue() writes for ``tasks``, ``(id, hints)``
    pairs, waiting for them (enqueue() waits for no reply); none on PostgreSQL, where the INSERT's
    NOTIFY tells the masters instead of the socket."""
    from django.db import connection

    expected = []
    if connection.vendor != "postgresql":
        expected = [
            {"op": "submit", "args": {"id": task_id, **hints}, "reply": False} for task_id, hints in tasks
        ]
    deadline = time.monotonic() + (timeout if expected else 0.2)
    while len(master.requests) < max(len(expected), 1) and time.monotonic() < deadline:
        time.sleep(0.01)
    return master.requests == expected


def _postgresql():
    from django.db import connection

    return connection.vendor == "postgresql"


# enqueue()'s handover through the socket: on PostgreSQL the INSERT's NOTIFY tells the masters instead.
through_socket = pytest.mark.skipif(
    _postgresql(), reason="on PostgreSQL the INSERT's NOTIFY tells the masters; this runs in the SQLite pass"
)
