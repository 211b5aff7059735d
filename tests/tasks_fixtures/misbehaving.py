"""Tasks that leave their lane the wrong way: exiting, hard exits, unprintable errors, grandchildren."""

import os
import subprocess
import sys
import time

from django.tasks import task


@task
def exit_zero():
    sys.exit(0)


@task
def hard_exit(code):
    os._exit(code)


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("this error cannot say what it is")


@task
def raise_unprintable():
    raise Unprintable()


@task(timeout=1.0, max_attempts=1)
def fork_and_hang(pid_file, own_session=False):
    """Start a grandchild that outlives nothing on its own, write its pid, then hang past the timeout."""
    grandchild = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=own_session
    )
    with open(pid_file, "w") as file:
        file.write(str(grandchild.pid))
    time.sleep(600)


@task
def fork_and_wait(pid_file, gate):
    """Start a grandchild, write its pid, and hold the child until ``gate`` exists."""
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(pid_file, "w") as file:
        file.write(str(grandchild.pid))
    while not os.path.exists(gate):
        time.sleep(0.02)
    return grandchild.pid


@task
def returns_nul():
    return {"text": "a\x00b"}


@task
def raises_nul():
    raise ValueError("a\x00b")
