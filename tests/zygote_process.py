"""A bare zygote of the engine's whose parent is this test process, attached to its ``zygote_spawn``:
the test asks it for helpers as a child of a master's zygote does, and drives their warm path."""

import contextlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from relieve_app.pool import zygote_spawn
from relieve_app.pool.zygote import MAX_MESSAGE, PRELOAD_ENV, ZYGOTE_FD_ENV

ENGINE_ROOT = str(Path(__file__).resolve().parents[1])
START_WAIT = 60.0  # seconds for the zygote's imports on a busy machine


@contextlib.contextmanager
def attached_zygote(preload=()):
    """Yields the zygote's Popen; on leaving, this process forgets it and it exits."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    env = {
        **os.environ,
        ZYGOTE_FD_ENV: str(child.fileno()),
        PRELOAD_ENV: json.dumps(list(preload)),
        "PYTHONSAFEPATH": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [ENGINE_ROOT, os.environ.get("PYTHONPATH")])),
    }
    argv = [sys.executable, "-m", "relieve_app.pool.zygote"]
    process = subprocess.Popen(argv, env=env, pass_fds=(child.fileno(),), start_new_session=True)
    child.close()
    try:
        parent.settimeout(START_WAIT)
        ready = json.loads(parent.recv(MAX_MESSAGE))
        assert ready["op"] == "ready" and not ready["failed"], ready
        zygote_spawn.attach(parent)
        yield process
    finally:
        zygote_spawn.detach()
        parent.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
