"""The tests' SMTP sink, also noting when each subject arrived, to time POST-to-sink."""

import threading
import time
from collections import defaultdict

from tests.smtp_sink import SMTPSink


class TimedSink(SMTPSink):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.arrivals = defaultdict(list)  # subject -> monotonic times it was received
        self._arrived = threading.Condition()

    def _receive(self, envelope):
        reply = super()._receive(envelope)
        if reply.startswith("250"):
            subject = str(self.messages[-1]["Subject"])  # one loop thread receives: [-1] is this one
            with self._arrived:
                self.arrivals[subject].append(time.monotonic())
                self._arrived.notify_all()
        return reply

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
        super().clear()
        with self._arrived:
            self.arrivals.clear()
