"""Plain tasks: arithmetic, sleeps, raising, a return value that is not JSON, an append-only log."""

import os
import sys
import time

import django
from django.tasks import task


@task
def add(a, b):
    return a + b


@task
def noop():
    return None


@task
def count_of_django_setup():
    """The reference count, in the child, of a function its master loaded before the forks."""
    return sys.getrefcount(django.setup)


@task
def sleep_ms(ms):
    time.sleep(ms / 1000)
    return ms


@task
def log_line(path, line, hold=0.0):
    """Append ``line`` to the file at ``path``: the order of lines is the order tasks ran."""
    with open(path, "a") as file:
        file.write(f"{line}\n")
    time.sleep(hold)
    return line


@task
def wait_for_file(path, timeout=60.0, started=None):
    """Busy until ``path`` exists: holds a child for as long as a test needs. A file at ``started``
    says the task runs in its child, which its row's RUNNING (the claim) does not yet."""
    if started:
        open(started, "w").close()
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    return os.getpid()


@task
def spin(seconds):
    """Computes for ``seconds``: a task that wants a core all along."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        sum(range(1000))
    return os.getpid()


@task
def fail(message):
    raise ValueError(message)


@task
def not_json():
    return {1, 2, 3}


@task
def pid():
    return os.getpid()
