"""The two tasks bench/tasks.py runs through each backend: nothing, and a 10 ms sleep."""

import time

from django.tasks import task


@task
def noop():
    return None


@task
def sleep_10ms():
    time.sleep(0.01)
    return None
