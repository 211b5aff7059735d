"""A CallableTask script that asks its zygote for helper processes, and the helpers' targets.

The zygote imports this file as ``tests.pool.scripts.helpers`` for the targets; the child loads it
by path for ``Helpers``.
"""

import json
import os
import sys

from relieve_app.pool import helper_loop, zygote_spawn
from relieve_app.pool.framing import FrameDecoder, encode

MODULE = "tests.pool.scripts.helpers"
ECHO = f"{MODULE}:echo"
SHARED_ECHO = f"{MODULE}:shared_echo"
PREPARE = f"{MODULE}:prepare"

prepared = []  # pid of the process each prepare() ran in


def prepare():
    prepared.append(os.getpid())


def failing_prepare():
    raise RuntimeError("cannot prepare")


def echo():
    """Answers each line of stdin with a JSON line: the line, and where this helper stands."""
    with open(0, "rb", closefd=False) as stdin:
        for line in stdin:
            answer = {
                "line": line.decode().strip(),
                "pid": os.getpid(),
                "ppid": os.getppid(),
                "sid": os.getsid(0),
                "prepared": prepared,
            }
            os.write(1, json.dumps(answer).encode() + b"\n")


def shared_echo():
    """A shared helper: answers each asker's frame with it, and this helper's pid."""
    pid = os.getpid()
    helper_loop.serve_shared(lambda request: {"echo": request, "pid": pid}, hello={"hello": pid})


def fail():
    sys.exit(7)


class Helpers:
    """Spawns helpers and talks to them, for the parent's calls."""

    def __init__(self):
        self.helpers = {}

    def available(self):
        return zygote_spawn.available()

    def spawn(self, target=ECHO, prepare=PREPARE, timeout=zygote_spawn.SPAWN_TIMEOUT):
        helper = zygote_spawn.spawn(target, prepare=prepare, timeout=timeout)
        if helper is None:
            return None
        self.helpers[helper.pid] = helper
        return helper.pid

    def spawn_shared(self, target=SHARED_ECHO):
        """The zygote's shared helper of ``target``: its pid, once it said hello to this asker."""
        helper = zygote_spawn.spawn(target, share=True)
        if helper is None:
            return None
        assert helper.shared
        helper.decoder = FrameDecoder()
        self.helpers[helper.pid] = helper
        assert self._frame(helper) == {"hello": helper.pid}
        return helper.pid

    def ask_frame(self, pid, request):
        helper = self.helpers[pid]
        helper.stdin.write(encode(request))
        return self._frame(helper)

    @staticmethod
    def _frame(helper):
        while True:
            data = helper.stdout.read(4096)
            if not data:
                return None
            if frames := helper.decoder.feed(data):
                (frame,) = frames
                return frame

    def release(self, pid):
        self.helpers.pop(pid).release()

    def wait(self, pid):
        return self.helpers[pid].wait(timeout=30)

    def ask(self, pid, line):
        helper = self.helpers[pid]
        helper.stdin.write(line.encode() + b"\n")
        answer = b""
        while not answer.endswith(b"\n"):
            data = helper.stdout.read(4096)
            if not data:
                return None
            answer += data
        return json.loads(answer)

    def kill(self, pid):
        helper = self.helpers[pid]
        helper.kill()
        return helper.wait(timeout=30)

    def close(self, pid):
        """Close its stdin, as a child's death does, and wait for its code."""
        helper = self.helpers[pid]
        helper.stdin.close()
        return helper.wait(timeout=30)

    def poll(self, pid):
        helper = self.helpers[pid]
        return [helper.poll(), helper.exited]

    def pid(self):
        return os.getpid()
