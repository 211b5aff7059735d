"""A script made of module-level functions: the module itself is the target."""

import os

channel = None
started_with = []


def set_channel(c):
    global channel
    channel = c


def start(*arguments):
    started_with.extend(arguments)


def multiply(a, b):
    return a * b


def pid():
    return os.getpid()


def arguments():
    return started_with


def grandchild(own_session=False):
    """Start a sleeping process of its own and give its pid: what a kill must not leave behind."""
    import subprocess
    import sys

    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=own_session
    ).pid
