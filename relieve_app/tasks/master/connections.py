"""The connections of the master's socket, each read as its bytes arrive: no task, stream or timer each.

A web request hands its tasks over and hangs up without waiting for an answer (``client.announce``),
so a burst of requests is a burst of connections. Most are served where they are accepted: the
request is already there, it is read, handled and closed in the same pass of the event loop, and
the connection is never registered with it. At most ``max_open`` are open at once; the others wait
in the kernel's listen queue (``SOMAXCONN``). So a burst costs neither the master's file
descriptors (1,024 is a common limit) nor its memory, which a process rarely gives back.

A client that sends nothing, or does not read its replies, for ``timeout`` seconds is cut off; one
periodic check covers every connection left open, and runs only while there is one.
"""

import errno
import logging
import resource
import time

from relieve_app.pool.framing import FrameDecoder

log = logging.getLogger(__name__)

MAX_OPEN = 256  # connections served at once; the kernel queues the next ones
ACCEPT_BATCH = 64  # connections taken per wake-up, so that the master's other work runs between
READS_PER_WAKEUP = 4  # one client that never stops sending cannot keep the loop to itself
READ_SIZE = 1 << 16
HIGH_WATER = 1 << 18  # bytes of replies held for a client that is not reading; its input waits
RETRY_ACCEPT = 0.1  # seconds before accepting again once the process ran out of descriptors
WARN_EVERY = 60.0  # seconds between two warnings that the process ran out of descriptors
OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def max_open():
    """MAX_OPEN, or a quarter of the process's descriptor limit when that is lower."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_OPEN
    return max(8, min(MAX_OPEN, soft // 4))


class Acceptor:
    """Accepts from a listening, non-blocking socket and serves each connection with ``answer``."""

    def __init__(self, loop, sock, answer, timeout):
        self.loop = loop
        self.sock = sock
        self.answer = answer  # frame (a dict, or the FrameError it was) -> bytes to send, or None
        self.timeout = timeout
        self.max_open = max_open()
        self.open = set()
        self._accepting = False
        self._closed = False
        self._check = None  # the periodic check of open connections, while there are some
        self._retry = None  # accepting again after the process ran out of descriptors
        self._warned_at = None

    def start(self):
        self._accept_again()

    def close(self):
        """Stop accepting and drop every open connection; the listening socket is closed."""
        self._closed = True
        self._stop_accepting()
        for handle in (self._check, self._retry):
            if handle is not None:
                handle.cancel()
        for connection in list(self.open):
            connection.close()
        self.sock.close()

    def _accept(self):
        for _ in range(ACCEPT_BATCH):
            if len(self.open) >= self.max_open:
                self._stop_accepting()  # a connection that closes starts it again
                return
            try:
                conn, _address = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in OUT_OF_RESOURCES:
                    self._out_of_descriptors(exc)
                    return
                if exc.errno == errno.ECONNABORTED:
                    continue
                raise
            conn.setblocking(False)
            Connection(self, conn).start()

    def _accept_again(self):
        self._retry = None
        if not self._accepting and not self._closed:
            self.loop.add_reader(self.sock.fileno(), self._accept)
            self._accepting = True

    def _stop_accepting(self):
        if self._accepting:
            self.loop.remove_reader(self.sock.fileno())
            self._accepting = False

    def _out_of_descriptors(self, exc):
        self._stop_accepting()
        self._retry = self.loop.call_later(RETRY_ACCEPT, self._accept_again)
        now = time.monotonic()
        if self._warned_at is None or now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning(
                "the master cannot accept connections on its socket (%s) with %d open; new ones wait "
                "in the socket's queue. Raise its limit of open files (ulimit -n, systemd's LimitNOFILE).",
                exc.strerror or exc,
                len(self.open),
            )

    def track(self, connection):
        self.open.add(connection)

    def watch(self):
        """A connection stays open past its first pass: make sure the check runs."""
        if self._check is None:
            self._check = self.loop.call_later(self._check_every(), self._cut_off_late)

    def forget(self, connection):
        self.open.discard(connection)
        if self._closed or self._accepting or self._retry is not None:
            return  # closed, still accepting, or waiting out a shortage of descriptors
        if len(self.open) < self.max_open:
            self._accept_again()

    def _check_every(self):
        return min(1.0, self.timeout / 4)

    def _cut_off_late(self):
        self._check = None
        now = time.monotonic()
        for connection in [c for c in self.open if c.deadline <= now]:
            connection.close()  # idle, or not reading its replies: drop what it would not take
        if self.open and not self._closed:
            self.watch()


class Connection:
    """One client: frames in, replies out, closed at its end of input once every reply is written."""

    __slots__ = ("acceptor", "deadline", "decoder", "ended", "fd", "out", "reading", "sock", "writing")

    def __init__(self, acceptor, sock):
        self.acceptor = acceptor
        self.sock = sock
        self.fd = sock.fileno()
        self.decoder = FrameDecoder()
        self.out = bytearray()
        self.ended = False  # the client sent its end of input
        self.reading = self.writing = False  # registered with the loop for that
        self.deadline = time.monotonic() + acceptor.timeout

    def start(self):
        self.acceptor.track(self)
        self._read()

    def close(self):
        if self.sock is None:
            return
        self._want(read=False, write=False)
        self.sock.close()
        self.sock = None
        self.acceptor.forget(self)

    def _read(self):
        for _ in range(READS_PER_WAKEUP):
            if len(self.out) >= HIGH_WATER:
                break  # it does not read its replies: its next requests wait until it does
            try:
                data = self.sock.recv(READ_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.close()
                return
            if not data:
                self.ended = True
                break
            self.deadline = time.monotonic() + self.acceptor.timeout
            try:
                self._answer(data)
            except Exception:  # a fault costs this connection, never the master's other work
                log.exception("serving a client of the master's socket failed; its connection is closed")
                self.close()
                return
        self._write()

    def _answer(self, data):
        for frame in self.decoder.feed(data):
            reply = self.acceptor.answer(frame)
            if reply is not None:
                self.out += reply

    def _write(self):
        if self.sock is None:
            return
        if self.out:
            try:
                sent = self.sock.send(self.out)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:  # the client is gone: its replies go with it
                self.close()
                return
            del self.out[:sent]
            if not self.out:
                self.deadline = time.monotonic() + self.acceptor.timeout
        if self.ended and not self.out:
            self.close()
            return
        self._want(read=not self.ended and len(self.out) < HIGH_WATER, write=bool(self.out))
        self.acceptor.watch()

    def _want(self, read, write):
        loop = self.acceptor.loop
        if read != self.reading:
            if read:
                loop.add_reader(self.fd, self._read)
            else:
                loop.remove_reader(self.fd)
            self.reading = read
        if write != self.writing:
            if write:
                loop.add_writer(self.fd, self._write)
            else:
                loop.remove_writer(self.fd)
            self.writing = write
