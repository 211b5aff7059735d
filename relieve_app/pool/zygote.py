"""The zygote: one warm process that forks tasks' children, and their helpers, run as
``python -m relieve_app.pool.zygote``.

A child started fresh pays for an interpreter and for everything its script imports (Django: the
settings, every app, every model) each time it starts. The zygote pays once: it imports what its
parent names, keeps those objects from being written to by a child's collections and reference
counts (``shared_image.settle``), so that the children share their pages, then forks a child per
request. The child runs the same ``Container`` as ``python -m relieve_app.pool``, minus the imports
already done.

The parent passes, in the environment::

    RELIEVE_ZYGOTE_FD   its end of a SOCK_SEQPACKET socketpair: one JSON message per packet
    RELIEVE_ZYGOTE_PRELOAD  JSON list of "pkg.module" (imported) or "pkg.module:callable" (imported, called)
    RELIEVE_ZYGOTE_IMMORTAL "0" leaves the preloaded objects' reference counts as they are

Then, one JSON object per packet (never pickle)::

    zygote -> {"op": "ready", "pid", "failed": [[item, error]...], "threads"}
    parent -> {"op": "fork", "id", "env": {...}, "cwd", "path": [...], "streams": ["stdout", "stderr"]}
              with the child's channel end, then each stream's write end, attached (SCM_RIGHTS)
    zygote -> {"op": "forked", "id", "pid"}  or  {"op": "fork_failed", "id", "error"}
    zygote -> {"op": "exit", "pid", "code"}  each child it reaps: the code as asyncio gives it
              (-N for signal N)

Each child gets a socketpair of its own to the zygote (``zygote_spawn.py`` holds its end; the zygote
closes its end when the child is reaped or closes its own). On it, and on the parent's socket too, a
process may ask for a *helper*: a process of another job, forked warm like the children, so that it
shares the zygote's pages instead of paying for an interpreter and its imports (the contact page's
Markdown renderer is one)::

    asker  -> {"op": "spawn", "id", "target": "pkg.mod:callable", "prepare": "pkg.mod:callable"}
              with the helper's stdin (a read end) then its stdout (a write end) attached
    zygote -> {"op": "spawned", "id", "pid"} with a pidfd of the helper attached (taken before the
              zygote could reap it: it names no other process), or {"op": "spawn_failed", "id", "error"}
    zygote -> {"op": "exited", "pid", "code"}  each helper of this asker it reaps, as "exit" for children

With ``"share": true`` the helper is *shared*: the zygote keeps at most one per target, forks it on the
first such request, and hands it each asker's pipes in turn, so that several children's helpers cost
one process (a few MiB of its own, bench/children.py) instead of one each. Its descriptor 0 is then a
SOCK_SEQPACKET socket on which each packet, ``{"op": "client"}``, carries an asker's two pipe ends
(``helper_loop.py`` serves them); each asker gets a pidfd of that same process, and each hears of its
exit. It ends once its last asker has closed its pipes.

``prepare`` (optional) is called in the zygote once per name, before the first helper that names it
is forked: what it builds (a warmed Markdown converter) is then shared copy-on-write by every helper.
It must start no thread. The helper leads its own session, has the signal handlers a fresh
interpreter has, holds none of the zygote's sockets, runs ``target()`` with those pipes as its
descriptors 0 and 1 (its stderr is the zygote's), and ends with ``os._exit`` (nothing the zygote
buffered is written twice). A helper's exit is the asker's business: the parent never hears of it
as a child's ``exit``.

A preload that fails is reported and skipped: the child meets the same error when it loads its
script, and reports it as a cold child would. The zygote stays single-threaded and holds nothing
open but its sockets when it forks. When the parent's end closes, the zygote exits and leaves its
children running: they lead their own sessions, and the parent watches them by pidfd.
"""

import atexit
import contextlib
import importlib
import json
import os
import select
import signal
import socket
import sys
import threading
import traceback

from . import shared_image, warm_up, zygote_spawn

ZYGOTE_FD_ENV = "RELIEVE_ZYGOTE_FD"
PRELOAD_ENV = "RELIEVE_ZYGOTE_PRELOAD"
IMMORTAL_ENV = "RELIEVE_ZYGOTE_IMMORTAL"
MAX_MESSAGE = 1 << 20  # one packet: a child's environment is far smaller
MAX_FDS = 3  # the channel, stdout, stderr
HELPER_FDS = 2  # its stdin, its stdout


def resolve(spec):
    """The object ``"pkg.module:attr.attr"`` names, its module imported."""
    if not isinstance(spec, str):
        raise ValueError(f"not a 'pkg.module:callable': {spec!r}")
    module_name, _, attr = spec.partition(":")
    target = importlib.import_module(module_name)
    for part in filter(None, attr.split(".")):
        target = getattr(target, part)
    return target


def preload(items):
    """Import (and call) each item; returns [[item, error], ...] for those that failed."""
    failed = []
    for item in items:
        try:
            target = resolve(item)
            if ":" in item:
                target()
        except BaseException as exc:  # SystemExit too: a preload must not end the zygote
            failed.append([item, f"{type(exc).__qualname__}: {exc}"])
    return failed


class Zygote:
    """Serves fork requests on ``sock`` until the parent closes it, and its children's spawn requests."""

    def __init__(self, sock, immortal=True):
        self.sock = sock
        self.immortal = immortal  # preloaded objects made immortal before forking (shared_image.py)
        self.spawn_ends = {}  # child pid -> the zygote's end of that child's spawn socket
        self.helpers = {}  # helper pid -> the sockets that asked for it, each told of its exit
        self.shared = {}  # target -> (pid, the zygote's end of its client socket) of its shared helper
        self.prepared = {}  # prepare name -> None once done, or the error it raised
        # The handlers a fresh interpreter has, before anything here changes one: each child gets them back.
        self.initial_handlers = {}
        for sig in signal.valid_signals():
            with contextlib.suppress(OSError, ValueError):
                self.initial_handlers[sig] = signal.getsignal(sig)
        self.wakeup_read, self.wakeup_write = os.pipe()
        for fd in (self.wakeup_read, self.wakeup_write):
            os.set_blocking(fd, False)

    def send(self, message, sock=None, fds=()):
        """Tell the parent (or the asker ``sock``); one gone is not an error here (the loop sees the EOF).
        A child's socket does not block: what it has no room for is dropped. Returns whether it went."""
        sock = self.sock if sock is None else sock
        if sock.fileno() == -1:
            return False
        data = json.dumps(message).encode()
        try:
            if fds:
                socket.send_fds(sock, [data], list(fds))
            else:
                sock.send(data)
        except OSError:
            return False
        return True

    def serve(self, items):
        failed = preload(["relieve_app.pool.container", *items])  # the engine's own path, warm too
        warm_up.run()  # those its preloads registered, unless run before this zygote was forked
        shared_image.settle(self.immortal)  # what was imported stays shared with the children
        signal.set_wakeup_fd(self.wakeup_write, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select() through the wakeup fd
        self.send({"op": "ready", "pid": os.getpid(), "failed": failed, "threads": threading.active_count()})
        while True:
            readable, _, _ = select.select([self.sock, self.wakeup_read, *self.spawn_ends.values()], [], [])
            if self.wakeup_read in readable:
                with contextlib.suppress(BlockingIOError):
                    while os.read(self.wakeup_read, 4096):
                        pass
                self.reap()
            for sock in readable:
                if (
                    sock not in (self.sock, self.wakeup_read)
                    and sock.fileno() != -1
                    and not self.receive(sock)
                ):
                    self.close_spawn_end(sock)
            if self.sock in readable and not self.receive(self.sock):
                break
        self.reap()

    def receive(self, sock):
        """Handle one packet from the parent or a child; False once that end is closed."""
        try:
            data, fds, _flags, _addr = socket.recv_fds(sock, MAX_MESSAGE, MAX_FDS)
        except (InterruptedError, BlockingIOError):
            return True
        except OSError:
            return False
        if not data:
            for fd in fds:
                os.close(fd)
            return False
        op = None
        try:
            request = json.loads(data)
            op = request.get("op")
            if op == "spawn":
                self.spawn(request, fds, sock)
            elif op == "fork" and sock is self.sock:
                pid = self.fork(request, fds)
                self.send({"op": "forked", "id": request.get("id"), "pid": pid})
            else:
                raise ValueError(f"unknown op {op!r}")
        except Exception as exc:
            failed = "fork_failed" if sock is self.sock and op != "spawn" else "spawn_failed"
            self.send({"op": failed, "id": _id(data), "error": f"{type(exc).__qualname__}: {exc}"}, sock)
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
        return True

    def close_spawn_end(self, sock):
        for pid, end in list(self.spawn_ends.items()):
            if end is sock:
                del self.spawn_ends[pid]
        for askers in self.helpers.values():  # a shared helper outlives many of its askers
            if sock in askers:
                askers.remove(sock)
        sock.close()

    # children -----------------------------------------------------------------

    def fork(self, request, fds):
        streams = list(request.get("streams") or [])
        if len(fds) != 1 + len(streams) or not set(streams) <= {"stdout", "stderr"}:
            raise ValueError(f"{len(fds)} descriptors for a channel and streams {streams!r}")
        env = request.get("env")
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            raise ValueError("env must map names to strings")
        zygote_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.flush()
        try:
            pid = os.fork()
        except BaseException:
            zygote_end.close()
            child_end.close()
            raise
        if pid == 0:
            zygote_end.close()
            self.become_child(fds[0], dict(zip(streams, fds[1:], strict=True)), request, child_end)
        child_end.close()
        zygote_end.setblocking(False)  # a child that reads none of its reports must not stop the zygote
        self.spawn_ends[pid] = zygote_end
        return pid

    def become_child(self, channel_fd, streams, request, spawn_end):
        """In the forked child: nothing of the zygote's left, then the container's own path."""
        try:
            os.setsid()  # its own session, as start_new_session gives a cold child: family.py counts on it
            self.restore_signals()
            self.close_zygote_ends()
            zygote_spawn.attach(spawn_end)
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

    # helpers ------------------------------------------------------------------

    def spawn(self, request, fds, asker):
        """Fork a helper for ``asker`` (or hand it the shared one); its reply is sent here, with a
        pidfd of the helper."""
        if len(fds) != HELPER_FDS:
            raise ValueError(f"{len(fds)} descriptors, not a helper's stdin and stdout")
        name, prepare = request.get("target"), request.get("prepare")
        pid = self.share(name, prepare, fds) if request.get("share") else self.fork_helper(name, prepare, fds)
        askers = self.helpers.setdefault(pid, [])
        if asker not in askers:
            askers.append(asker)
        pidfd = os.pidfd_open(pid)  # before the loop can reap it: this pidfd is of this helper only
        try:
            sent = self.send({"op": "spawned", "id": request.get("id"), "pid": pid}, asker, [pidfd])
            if not sent and not request.get("share"):  # a shared one drops the pipes of an asker gone
                os.kill(pid, signal.SIGKILL)  # its asker cannot hear of it: no one would ever use it
        finally:
            os.close(pidfd)

    def fork_helper(self, name, prepare, fds, close=()):
        """Fork a helper running ``name()`` with ``fds`` as its descriptors 0 and 1, and without the
        descriptors ``close``; its pid."""
        modules = len(sys.modules)
        target = resolve(name)
        if not callable(target):
            raise ValueError(f"{name} is not callable")
        prepared = self.prepare(prepare)
        if prepared or len(sys.modules) != modules:
            shared_image.settle(self.immortal)  # what the helpers share, as the preloads are
        self.flush()
        pid = os.fork()
        if pid == 0:
            for fd in close:
                os.close(fd)
            self.become_helper(target, fds)
        return pid

    def share(self, name, prepare, fds):
        """Hand the asker's pipes ``fds`` to the shared helper of ``name``, forked first if there is
        none or it is gone; its pid."""
        if name in self.shared:
            pid, clients = self.shared[name]
            if self.hand_over(clients, fds):
                return pid
            self.forget_shared(name)  # exiting, or stuck with its socket full: the next one serves
        clients, helper_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            # Neither the zygote's end nor the asker's pipes stay open in it: it is handed those.
            pid = self.fork_helper(name, prepare, [helper_end.fileno()], close=[clients.fileno(), *fds])
        except BaseException:
            clients.close()
            raise
        finally:
            helper_end.close()
        clients.setblocking(False)  # a helper busy in a long call must not stop the zygote
        self.shared[name] = (pid, clients)
        self.helpers[pid] = []  # a helper's end is never a child's exit, even with no asker to tell
        if not self.hand_over(clients, fds):
            os.kill(pid, signal.SIGKILL)  # no asker will ever reach it
            self.forget_shared(name)
            raise RuntimeError(f"the shared helper {name} took no asker")
        return pid

    @staticmethod
    def hand_over(clients, fds):
        try:
            socket.send_fds(clients, [b'{"op": "client"}'], list(fds))
        except OSError:
            return False
        return True

    def forget_shared(self, name):
        _pid, clients = self.shared.pop(name)
        clients.close()

    def prepare(self, name):
        """Call ``prepare`` once per name; True when it ran now. One that failed fails every spawn
        naming it, without running again."""
        if name is None:
            return False
        if name not in self.prepared:
            try:
                resolve(name)()
            except BaseException as exc:  # SystemExit too: a prepare must not end the zygote
                self.prepared[name] = f"{type(exc).__qualname__}: {exc}"
            else:
                self.prepared[name] = None
                return True
        if self.prepared[name] is not None:
            raise RuntimeError(f"prepare {name} failed: {self.prepared[name]}")
        return False

    def become_helper(self, target, fds):
        """In the forked helper: its own session, ``fds`` as 0 (and 1), nothing of the zygote's."""
        code = 1
        try:
            os.setsid()
            self.restore_signals()
            self.close_zygote_ends()
            for fd, number in zip(fds, (0, 1), strict=False):
                if fd != number:
                    os.dup2(fd, number)
                    os.close(fd)
            target()
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc)
        except BaseException:
            traceback.print_exc()
        with contextlib.suppress(BaseException):
            sys.stderr.flush()
        os._exit(code)  # no exit functions, no flush of what the zygote's objects hold

    # in a forked process ------------------------------------------------------

    def restore_signals(self):
        """The handlers and mask a fresh interpreter has."""
        signal.set_wakeup_fd(-1)
        for sig, handler in self.initial_handlers.items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())

    def close_zygote_ends(self):
        """Every socket and pipe of the zygote's: a child holding another's spawn end would keep the
        zygote from seeing that one's end of file."""
        self.sock.close()
        for end in self.spawn_ends.values():
            end.close()
        self.spawn_ends.clear()
        self.helpers.clear()
        for _pid, clients in self.shared.values():
            clients.close()
        self.shared.clear()
        os.close(self.wakeup_read)
        os.close(self.wakeup_write)

    @staticmethod
    def flush():
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # or the forked process would write what the zygote had buffered once more

    def reap(self):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            code = os.waitstatus_to_exitcode(status)
            askers = self.helpers.pop(pid, None)
            if askers is not None:  # a helper: its askers' to hear of, never the parent's as a child's exit
                for asker in askers:
                    self.send({"op": "exited", "pid": pid, "code": code}, asker)
                for name in [name for name, (shared, _) in self.shared.items() if shared == pid]:
                    self.forget_shared(name)
                continue
            end = self.spawn_ends.pop(pid, None)
            if end is not None:
                end.close()
            self.send({"op": "exit", "pid": pid, "code": code})


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


def run(sock, items, immortal=True):
    """Serve ``sock`` with ``items`` preloaded, then end this process (never returns)."""
    Zygote(sock, immortal).serve(items)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main():
    sock = socket.socket(fileno=int(os.environ.pop(ZYGOTE_FD_ENV)))
    run(sock, json.loads(os.environ.pop(PRELOAD_ENV, "[]")), os.environ.pop(IMMORTAL_ENV, "1") != "0")


if __name__ == "__main__":
    main()
