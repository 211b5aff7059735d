"""Signals sent through a process's pidfd, which names that process alone: its pid may be another's
once it has exited and been reaped, its pidfd never is."""

import contextlib
import signal


class SignalledByPidfd:
    """``send_signal``, ``terminate`` and ``kill`` for a process whose pidfd is kept in ``_pidfd``,
    None once the process is known to be gone: then nothing is sent."""

    _pidfd = None

    def send_signal(self, sig):
        if self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):  # exited, not yet reaped
                signal.pidfd_send_signal(self._pidfd, sig)

    def terminate(self):
        self.send_signal(signal.SIGTERM)

    def kill(self):
        self.send_signal(signal.SIGKILL)
