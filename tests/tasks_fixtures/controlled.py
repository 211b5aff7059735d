"""A task that starts a process of its own and waits: what a cancel must stop, all of it."""

import os
import subprocess
import time

from django.tasks import task


@task
def spawn_and_wait(pid_path, timeout=60.0):
    """Start ``sleep``, write its pid to ``pid_path``, and stay busy until killed or ``timeout``."""
    sleeper = subprocess.Popen(["sleep", str(int(timeout) + 30)])
    with open(pid_path, "w") as file:
        file.write(f"{os.getpid()} {sleeper.pid}")
    time.sleep(timeout)
    return os.getpid()
