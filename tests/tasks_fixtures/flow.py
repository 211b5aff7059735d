"""Tasks with flow control: unique, capped, rate-limited, and one that reports its progress."""

import os
import time

from django.tasks import task

from relieve_app.control import report_progress


@task(unique=True)
def unique_add(a, b):
    return a + b


@task(concurrency=1)
def capped(path, hold=0.2):
    """Append when it started and ended: attempts of a capped task must never overlap."""
    start = time.time()
    time.sleep(hold)
    with open(path, "a") as file:
        file.write(f"{start} {time.time()}\n")
    return os.getpid()


@task(rate="3/2s")
def rated(path):
    """Append when it started: no window of two seconds may hold more than three."""
    with open(path, "a") as file:
        file.write(f"{time.time()}\n")


@task
def free(path):
    with open(path, "a") as file:
        file.write(f"{time.time()}\n")


@task
def progressing(gate, steps=5):
    """Report each step, then wait for ``gate`` to exist before the last: progress seen while it runs."""
    for step in range(steps):
        report_progress(step + 1, steps, note=f"step {step + 1}")
    deadline = time.monotonic() + 60
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.02)
    return steps


@task(concurrency=1)
def capped_until(gate, timeout=60.0):
    """A capped task that holds its place until ``gate`` exists."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.02)
    return os.getpid()


@task(rate="1/h")
def rare():
    return "once an hour"
