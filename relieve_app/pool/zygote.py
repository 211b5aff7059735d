"""The zygote: one warm process that forks tasks' children, run as ``python -m relieve_app.pool.zygote``.

A child started fresh pays for an interpreter and for everything its script imports (Django: the
settings, every app, every model) each time it starts. The zygote pays once: it imports what its
parent names, freezes those objects out of the collector's reach (``gc.freeze``, so a child's
collections do not write to the pages it shares), then forks a child per request. The child runs
the same ``Container`` as ``python -m relieve_app.pool``, minus the imports already done.

The parent passes, in the environment::

    RELIEVE_ZYGOTE_FD   its end of a SOCK_SEQPACKET socketpair: one JSON message per packet
    RELIEVE_ZYGOTE_PRELOAD  JSON list of "pkg.module" (imported) or "pkg.module:callable" (imported, called)

Then, one JSON object per packet (never pickle)::

    zygote -> {"op": "ready", "pid", "failed": [[item, error]...], "threads"}
    parent -> {"op": "fork", "id", "env": {...}, "cwd", "path": [...], "streams": ["stdout", "stderr"]}
              with the child's channel end, then each stream's write end, attached (SCM_RIGHTS)
    zygote -> {"op": "forked", "id", "pid"}  or  {"op": "fork_failed", "id", "error"}
    zygote -> {"op": "exit", "pid", "code"}  each child it reaps: the code as asyncio gives it
              (-N for signal N)

A preload that fails is reported and skipped: the child meets the same error when it loads its
script, and reports it as a cold child would. The zygote stays single-threaded and holds nothing
open but its socket when it forks. When the parent's end closes, the zygote exits and leaves its
children running: they lead their own sessions, and the parent watches them by pidfd.
"""

import atexit
import contextlib
import gc
import importlib
import json
import os
import select
import signal
import socket
import sys
import threading
import traceback

ZYGOTE_FD_ENV = "RELIEVE_ZYGOTE_FD"
PRELOAD_ENV = "RELIEVE_ZYGOTE_PRELOAD"
MAX_MESSAGE = 1 << 20  # one packet: a child's environment is far smaller
MAX_FDS = 3  # the channel, stdout, stderr


def preload(items):
    """Import (and call) each item; returns [[item, error], ...] for those that failed."""
    failed = []
    for item in items:
        module_name, _, attr = item.partition(":")
        try:
            target = importlib.import_module(module_name)
            for part in filter(None, attr.split(".")):
                target = getattr(target, part)
            if attr:
                target()
        except BaseException as exc:  # SystemExit too: a preload must not end the zygote
            failed.append([item, f"{type(exc).__qualname__}: {exc}"])
    return failed


class Zygote:
    """Serves fork requests on ``sock`` until the parent closes it."""

    def __init__(self, sock):
        self.sock = sock
        # The handlers a fresh interpreter has, before anything here changes one: each child gets them back.
        self.initial_handlers = {}
        for sig in signal.valid_signals():
            with contextlib.suppress(OSError, ValueError):
                self.initial_handlers[sig] = signal.getsignal(sig)
        self.wakeup_read, self.wakeup_write = os.pipe()
        for fd in (self.wakeup_read, self.wakeup_write):
            os.set_blocking(fd, False)

    def send(self, message):
        """Tell the parent; a parent gone is not an error here (the loop sees the EOF)."""
        with contextlib.suppress(OSError):
            self.sock.send(json.dumps(message).encode())

    def serve(self, items):
        failed = preload(["relieve_app.pool.container", *items])  # the engine's own path, warm too
        gc.collect()
        gc.freeze()  # what was imported stays out of the children's collections: fewer pages copied
        signal.set_wakeup_fd(self.wakeup_write, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select() through the wakeup fd
        self.send({"op": "ready", "pid": os.getpid(), "failed": failed, "threads": threading.active_count()})
        while True:
            readable, _, _ = select.select([self.sock, self.wakeup_read], [], [])
            if self.wakeup_read in readable:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self.wakeup_read, 4096):
                        pass
                self.reap()
            if self.sock in readable and not self.receive():
                break
        self.reap()

    def receive(self):
        """Handle one packet; False once the parent has closed its end."""
        try:
            data, fds, _flags, _addr = socket.recv_fds(self.sock, MAX_MESSAGE, MAX_FDS)
        except InterruptedError:
            return True
        except OSError:
            return False
        if not data:
            for fd in fds:
                os.close(fd)
            return False
        try:
            request = json.loads(data)
            if request.get("op") != "fork":
                raise ValueError(f"unknown op {request.get('op')!r}")
            pid = self.fork(request, fds)
        except Exception as exc:
            self.send({"op": "fork_failed", "id": _id(data), "error": f"{type(exc).__qualname__}: {exc}"})
        else:
            self.send({"op": "forked", "id": request.get("id"), "pid": pid})
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
        return True

    def fork(self, request, fds):
        streams = list(request.get("streams") or [])
        if len(fds) != 1 + len(streams) or not set(streams) <= {"stdout", "stderr"}:
            raise ValueError(f"{len(fds)} descriptors for a channel and streams {streams!r}")
        env = request.get("env")
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            raise ValueError("env must map names to strings")
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # or the child would write what the zygote had buffered once more
        pid = os.fork()
        if pid == 0:
            self.become_child(fds[0], dict(zip(streams, fds[1:], strict=True)), request)
        return pid

    def become_child(self, channel_fd, streams, request):
        """In the forked child: nothing of the zygote's left, then the container's own path."""
        try:
            os.setsid()  # its own session, as start_new_session gives a cold child: family.py counts on it
            signal.set_wakeup_fd(-1)
            for sig, handler in self.initial_handlers.items():
                with contextlib.suppress(OSError, ValueError, TypeError):
                    signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            self.sock.close()
            os.close(self.wakeup_read)
            os.close(self.wakeup_write)
            for name, fd in streams.items():
                os.dup2(fd, 1 if name == "stdout" else 2)
                os.close(fd)
            if "stdout" in streams:
                sys.stdout.reconfigure(line_buffering=False)  # a pipe, as a cold child's stdout is
            os.environ.clear()
            os.environ.update(request["env"])
            os.environ["RELIEVE_CHANNEL_FD"] = str(channel_fd)
            os.set_inheritable(channel_fd, True)  # as pass_fds leaves it in a cold child
            if request.get("cwd"):
                os.chdir(request["cwd"])
            first = [str(folder) for folder in request.get("path") or []]
            sys.path[:] = first + [folder for folder in sys.path if folder not in first]

            from .container import main

            main()  # ends the process with os._exit
            code = 0
        except SystemExit as exc:  # as the interpreter ends on an uncaught SystemExit
            code = _exit_code(exc)
        except KeyboardInterrupt:
            code = None
        except BaseException:
            traceback.print_exc()
            code = 1
        _leave(code)

    def reap(self):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.send({"op": "exit", "pid": pid, "code": os.waitstatus_to_exitcode(status)})


def _exit_code(exc):
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _leave(code):
    """End a child as its interpreter would: exit functions, flushed output, then the code
    (None: killed by SIGINT, as an uncaught KeyboardInterrupt ends Python)."""
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    if code is None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        code = 130
    os._exit(code)


def _id(data):
    with contextlib.suppress(Exception):
        return json.loads(data).get("id")
    return None


def run(sock, items):
    """Serve ``sock`` with ``items`` preloaded, then end this process (never returns)."""
    Zygote(sock).serve(items)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main():
    sock = socket.socket(fileno=int(os.environ.pop(ZYGOTE_FD_ENV)))
    run(sock, json.loads(os.environ.pop(PRELOAD_ENV, "[]")))


if __name__ == "__main__":
    main()
