"""A real SMTP server that keeps what it receives, for tests and benchmarks.

    with SMTPSink() as sink:
        ...  # send to sink.host:sink.port
        sink.wait_for(1)
        sink.messages[0]["Subject"]

Knobs, all settable while it runs: `refuse_share` (that share of messages is refused with 550,
drawn from a seeded generator, so a run repeats), `refuse_next(n)`, `refuse_if(subject) -> bool`,
`stall` (seconds to wait before answering DATA), `stall_share` (the share of messages that
wait `stall`, 1.0 by default; drawn from its own seeded generator, so refusals do not change).
`stop()` drops the server and closes its connections, `start()` brings it back on the same port.

Standalone, for benchmarks: python -m tests.smtp_sink --port 2525 --refuse-share 0.05 --stall 0.1
"""

import argparse
import asyncio
import email
import email.policy
import random
import signal
import socket
import threading
import time
import weakref

from aiosmtpd.controller import Controller

REFUSAL = "550 5.7.1 refused by sink"
TRY_LATER = "451 4.3.0 try again later"


def free_port(host="127.0.0.1"):
    """A port nobody listens on now: aiosmtpd's Controller cannot be asked for port 0."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class SMTPSink:
    def __init__(
        self,
        *,
        host="127.0.0.1",
        port=None,
        refuse_share=0.0,
        refuse_if=None,
        stall=0.0,
        stall_share=1.0,
        seed=0,
    ):
        self.host = host
        self.port = port or free_port(host)
        self.refuse_share = refuse_share
        self.refuse_if = refuse_if
        self.stall = stall
        self.stall_share = stall_share
        self.messages = []
        self.envelopes = []
        self.received_at = []  # time.monotonic() of each kept message, for latency measurements
        self.refused = 0
        self.refused_subjects = []
        self.sessions = 0
        self._random = random.Random(seed)
        self._stall_random = random.Random(f"stall {seed}")
        self._refuse_next = 0
        self.refusal = REFUSAL  # the reply of a refused message: a 5xx is final, a 4xx temporary
        self._changed = threading.Condition()
        self._controller = None

    @property
    def delay(self):
        return self.stall

    @delay.setter
    def delay(self, seconds):
        self.stall = seconds

    def start(self):
        if self._controller is not None:
            raise RuntimeError("the SMTP sink is already running")
        # A stopped controller has closed its loop: every start needs a fresh one.
        self._controller = _Controller(_Handler(self), hostname=self.host, port=self.port)
        self._controller.start()
        return self

    def stop(self):
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    @property
    def running(self):
        return self._controller is not None

    def refuse_next(self, count=1):
        with self._changed:
            self._refuse_next += count

    def wait_for(self, count, timeout=5.0):
        """Return once at least `count` messages were received; TimeoutError otherwise."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.messages) >= count, timeout):
                raise TimeoutError(
                    f"SMTP sink received {len(self.messages)} of {count} messages in {timeout}s"
                    f" ({self.refused} refused)"
                )
            return list(self.messages)

    def clear(self):
        with self._changed:
            self.messages.clear()
            self.envelopes.clear()
            self.received_at.clear()
            self.refused = 0
            self.refused_subjects.clear()

    def _stall_for(self):
        """Seconds this message waits before its DATA is answered."""
        if not self.stall:
            return 0.0
        if self.stall_share >= 1.0 or self._stall_random.random() < self.stall_share:
            return self.stall
        return 0.0

    def _count_session(self):
        with self._changed:
            self.sessions += 1

    def _receive(self, envelope):
        """Keep or refuse one message; returns the SMTP reply."""
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        with self._changed:
            if self._refuses(message):
                self.refused += 1
                self.refused_subjects.append(str(message["Subject"]))
                self._changed.notify_all()
                return self.refusal
            self.messages.append(message)
            self.envelopes.append(envelope)
            self.received_at.append(time.monotonic())
            self._changed.notify_all()
        return "250 OK"

    def _refuses(self, message):
        draw = self._random.random()  # drawn for every message so the sequence only depends on the seed
        if self._refuse_next:
            self._refuse_next -= 1
            return True
        if self.refuse_if is not None and self.refuse_if(str(message["Subject"] or "")):
            return True
        return draw < self.refuse_share

    def __repr__(self):
        return (
            f"<SMTPSink {self.host}:{self.port} received={len(self.messages)} refused={self.refused}"
            f" sessions={self.sessions}>"
        )


class _Controller(Controller):
    """aiosmtpd's Controller, whose stop() first drops the connections of its clients.

    Its own stop() closes the listening socket while connections may still be open or half accepted.
    An open one is finalised by the garbage collector after the loop is gone; on CPython 3.13.0 that,
    like a close in the middle of an accept, raises inside ``__del__`` (cpython gh-109564), an
    unraisable exception that fails whichever test is running then.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._sessions = weakref.WeakSet()

    def factory(self):  # called once per connection
        session = super().factory()
        self._sessions.add(session)
        return session

    def stop(self, no_assert=False):
        if self._thread is not None:
            asyncio.run_coroutine_threadsafe(self._drop_clients(), self.loop).result(timeout=5)
        super().stop(no_assert)

    async def _drop_clients(self):
        for listening in self.server.sockets:
            self.loop.remove_reader(listening.fileno())  # no new connection from here on
        for _ in range(5):  # an accept under way takes a few iterations to attach its transport
            await asyncio.sleep(0)
        for session in list(self._sessions):
            if session.transport is not None and not session.transport.is_closing():
                session.transport.abort()
        await asyncio.sleep(0)  # their connection_lost callbacks run before this resumes
        self.server.close()


class _Handler:
    """aiosmtpd hooks; the state lives on the sink."""

    def __init__(self, sink):
        self.sink = sink

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        # Counted at the first MAIL FROM, so aiosmtpd's own start-up probe is not a session.
        if not getattr(session, "sink_counted", False):
            session.sink_counted = True
            self.sink._count_session()
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        stall = self.sink._stall_for()
        if stall:
            await asyncio.sleep(stall)
        return self.sink._receive(envelope)


def main(argv=None):
    parser = argparse.ArgumentParser(description="An SMTP server that keeps and counts what it gets.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--refuse-share", type=float, default=0.0, dest="refuse_share")
    parser.add_argument("--stall", type=float, default=0.0, help="seconds before answering DATA")
    parser.add_argument("--stall-share", type=float, default=1.0, dest="stall_share")
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args(argv)

    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    sink = SMTPSink(
        host=options.host,
        port=options.port,
        refuse_share=options.refuse_share,
        stall=options.stall,
        stall_share=options.stall_share,
        seed=options.seed,
    )
    with sink:
        print(f"SMTP sink listening on {sink.host}:{sink.port}", flush=True)
        done.wait()
    print(f"received {len(sink.messages)} refused {sink.refused} sessions {sink.sessions}", flush=True)


if __name__ == "__main__":
    main()
