"""Stopping the processes a test or a benchmark started: as a supervisor would, then for sure."""

import subprocess


def stop_all(processes, timeout=30):
    """SIGTERM each process still running, then wait; SIGKILL any not ended within `timeout` seconds."""
    running = [process for process in processes if process is not None and process.poll() is None]
    for process in running:
        process.terminate()
    for process in running:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
