"""`make run`: the web server and the relieve master side by side, stopped together and gently.

    python -m project.run [ADDRESS:PORT]

Each of the two runs in a process group of its own, so a Ctrl-C reaches this runner alone, which
passes exactly one SIGTERM to each and waits: the master finishes its sends in flight within
RELIEVE_GRACE, then exits. A second Ctrl-C only says what is awaited; a third kills both. When the
web server stops by itself, the master is stopped the same way. When the master stops by itself,
the web server goes on, as it is built to: its pages show the master-down banner and posts queue.
The runner says so at once, and exits 1 at the end, so the stop is seen, never silent.

In a terminal the runner takes the foreground for as long as it runs, so the `make` that started it
never sees the Ctrl-C and exits 0 with it, instead of dying of the signal.
"""

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLEAN = {0, -signal.SIGTERM, -signal.SIGINT}  # how a child that was told to stop ends
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Runner:
    def __init__(self, address, python=sys.executable):
        self.commands = {
            "relieve master": [python, "manage.py", "runrelieve", "--reload"],
            "web server": [python, "manage.py", "runserver", address],
        }
        self.processes = {}
        self.signals = []  # the stop signals received, in order; the handler only records
        self.master_ended = None  # the master's status, when it stopped without being asked

    def run(self):
        for sig in STOP_SIGNALS:
            signal.signal(sig, self.record)
        terminal = take_terminal()
        try:
            self.spawn_all()
            ended = self.wait_for_a_reason()
            self.stop_all()
            self.wait_all()
        finally:
            give_back(terminal)
        return self.exit_status(ended)

    def record(self, sig, frame):
        self.signals.append(sig)

    def spawn_all(self):
        for name, argv in self.commands.items():
            self.processes[name] = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, process_group=0)

    def wait_for_a_reason(self):
        """Until a stop signal comes or a child ends; returns the name of the child that ended, if any."""
        while not self.signals:
            for name, process in self.processes.items():
                if process.poll() is None:
                    continue
                if name != "relieve master":
                    return name
                if self.master_ended is None:
                    self.master_ended = process.returncode
                    say_master_stopped(process.returncode)
            time.sleep(0.1)
        return None

    def stop_all(self):
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)

    def wait_all(self):
        """Wait however long the master's grace takes; more signals only inform, the third kills."""
        told = len(self.signals)
        while any(process.poll() is None for process in self.processes.values()):
            if len(self.signals) > told:
                told = len(self.signals)
                self.insist(told)
            time.sleep(0.1)

    def insist(self, count):
        waiting = [name for name, process in self.processes.items() if process.poll() is None]
        if count < 3:
            print(
                f"still stopping: waiting for the {' and '.join(waiting)} to finish (the master lets sends "
                "in flight end within RELIEVE_GRACE); press Ctrl-C again to kill them",
                file=sys.stderr,
            )
            return
        for name in waiting:
            print(f"killing the {name}", file=sys.stderr)
            self.processes[name].kill()

    def exit_status(self, ended):
        """0 when both were stopped cleanly; else the status of the one that ended or failed first."""
        codes = {name: process.returncode for name, process in self.processes.items()}
        if ended is not None and codes[ended] not in CLEAN:
            print(f"the {ended} exited with status {codes[ended]}", file=sys.stderr)
            return 1
        if self.master_ended is not None:
            print(f"the relieve master had stopped by itself (status {self.master_ended})", file=sys.stderr)
            codes["relieve master"] = 0  # already said; the web server's own stop is what is left
            unclean = [name for name, code in codes.items() if code not in CLEAN]
            for name in unclean:
                print(f"the {name} did not stop cleanly (status {codes[name]})", file=sys.stderr)
            return 1
        unclean = [name for name, code in codes.items() if code not in CLEAN]
        for name in unclean:
            print(f"the {name} did not stop cleanly (status {codes[name]})", file=sys.stderr)
        return 1 if unclean else 0


def say_master_stopped(code):
    how = (
        f"killed by {signal.Signals(-code).name}"
        if code < 0 and -code in signal.valid_signals()
        else f"status {code}"
    )
    print(
        f"\n*** the relieve master stopped by itself ({how}). The web server keeps serving: its pages\n"
        "*** show the master-down banner and posts wait in the queue. Start a master again in another\n"
        "*** terminal with: python manage.py runrelieve   (or press Ctrl-C to stop the web server)\n",
        file=sys.stderr,
        flush=True,
    )


def take_terminal():
    """Move this runner into a process group of its own and make it the terminal's foreground.

    Returns what give_back() needs, or None when there is no terminal or the runner is not in front.
    """
    try:
        fd = sys.stdin.fileno()
        if not os.isatty(fd) or os.tcgetpgrp(fd) != os.getpgrp():
            return None
        foreground = os.getpgrp()
        os.setpgid(0, 0)
        with _quiet_ttou():
            os.tcsetpgrp(fd, os.getpgrp())
    except (OSError, ValueError):
        return None
    return fd, foreground


def give_back(terminal):
    if terminal is None:
        return
    fd, foreground = terminal
    with _quiet_ttou(), contextlib.suppress(OSError):
        os.tcsetpgrp(fd, foreground)


@contextlib.contextmanager
def _quiet_ttou():
    """A process outside the foreground that changes it gets SIGTTOU, which would stop it."""
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGTTOU, previous)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address", nargs="?", default="127.0.0.1:8000", help="runserver's address:port")
    options = parser.parse_args(argv)
    return Runner(options.address).run()


if __name__ == "__main__":
    sys.exit(main())
