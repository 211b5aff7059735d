"""A Markdown body to a text part and, when it can be had in time, an HTML part.

Python-Markdown can take minutes, or recurse past the stack, on a small hostile body, and a
runaway render cannot be interrupted from inside the process that runs it. So bodies of a known bad
shape are not rendered at all (shape.py), and the rest are rendered in a separate process
(render_process.py) that is killed when it misses its deadline. Either way the text part, which is
the body itself, goes out: the HTML part is a courtesy, never a reason to hold or fail a message.

In a child the master's zygote forked, the renderer is forked by that zygote too
(``relieve_app.pool.zygote_spawn``), with Markdown imported and a converter warmed there once, and
the zygote's children share that one renderer: it shares its pages with the zygote (about 3 MiB of
memory of its own instead of 11 for a fresh interpreter), and one renderer for all the mail children
instead of one each keeps 8 MiB less in a master of four (bench/children.py). A render takes about
half a millisecond, so the children rarely wait for each other; one that waits behind a render killed
at its deadline asks for a new renderer and sends its body once more. Anywhere else (a cold child, the
web process, a zygote that is gone or does not answer) a renderer of its own is started as
``python -m relieve_app.contact.render_process``.
A warm renderer is the zygote's child, in neither a mail child's session nor its family
(``relieve_app.pool.family``): once every child using it has died or let it go, it reads end-of-file
and exits, and one stuck in a render is ended by its CPU limit, as a cold renderer whose parent died is.
"""

import os
import selectors
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

from relieve_app.contact.shape import too_complex
from relieve_app.pool import zygote_spawn
from relieve_app.pool.framing import FrameDecoder, FrameError, encode

HTML_DOCUMENT = '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n<body>\n{}\n</body></html>\n'
RENDER_TIMEOUT = 0.5  # seconds a render may take before the body goes out as text only
START_TIMEOUT = 15.0  # seconds the renderer may take to import Markdown, on a loaded machine
IDLE_TIMEOUT = 60.0  # a renderer unused this long is let go: a quiet site keeps no renderer running
SPAWN_TIMEOUT = 5.0  # seconds the zygote may take to fork a renderer (the first imports Markdown)
PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
WARM_TARGET = "relieve_app.contact.render_process:serve_shared"
WARM_PREPARE = "relieve_app.contact.render_process:prepare"


class Rendered(NamedTuple):
    text: str
    html: str | None  # None: send the text part alone
    fallback: str | None = None  # why there is no HTML part


class RenderError(Exception):
    """The renderer gave no HTML: it failed, died or missed its deadline."""


class RendererDied(RenderError):
    """The renderer process ended while this one waited for it."""

    def __init__(self, message, shared):
        super().__init__(message)
        self.shared = shared  # another child's deadline may have ended it


class Renderer:
    """Renders bodies in one renderer process, started on first use, replaced when killed, and let go
    after ``idle_timeout`` seconds without a render (the next render starts or asks for another).

    Thread-safe; one render at a time. `close()` stops the process, or lets go of a shared one; a
    renderer whose parent died reads end-of-file and exits on its own.
    """

    def __init__(self, timeout=RENDER_TIMEOUT, start_timeout=START_TIMEOUT, idle_timeout=IDLE_TIMEOUT):
        self.timeout = timeout
        self.start_timeout = start_timeout
        self.idle_timeout = idle_timeout
        self.process = None
        self._decoder = None
        self._ready = False
        self._lock = threading.Lock()
        self._last_used = time.monotonic()
        self._idle_watch = None

    def render(self, body):
        text = body.replace("\r\n", "\n").replace("\r", "\n")
        reason = too_complex(text)
        if reason is None:
            try:
                return Rendered(text, HTML_DOCUMENT.format(self.to_html(text)))
            except RenderError as exc:
                reason = str(exc)
        return Rendered(text, None, reason)

    def to_html(self, text):
        """The sanitised HTML fragment for `text`; RenderError when it cannot be had in time."""
        with self._lock:
            self._last_used = time.monotonic()
            try:
                request = encode({"body": text})
            except FrameError as exc:
                raise RenderError(f"the body cannot be sent to the renderer: {exc}") from None
            reply = self._started_exchange(request)
            if reply is None:
                self._stop()
                self._spawn()  # its start overlaps this mail's sending, not the next render
                raise RenderError(f"Markdown took over {self.timeout:g}s")
            if "html" not in reply:
                raise RenderError(f"Markdown failed: {reply.get('error', reply)}")
            return reply["html"]

    def start(self):
        """Start the renderer process now, without waiting for it: the first render then waits less."""
        with self._lock:
            if not _running(self.process):
                self._stop()
                self._spawn()

    def close(self):
        with self._lock:
            self._release()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # the process ----------------------------------------------------------------

    def _started_exchange(self, request):
        """The reply to ``request`` (None past the deadline). A shared renderer may end while this
        one waits, at another child's deadline: then once more, on the one the zygote gives next."""
        try:
            self._ensure_started()
            return self._exchange(request, self.timeout)
        except RendererDied as exc:
            if not exc.shared:
                raise
        self._ensure_started()
        return self._exchange(request, self.timeout)

    def _ensure_started(self):
        if not _running(self.process):
            self._stop()
            self._spawn()
        if not self._ready:
            if self._exchange(b"", self.start_timeout) != {"ready": True}:
                self._stop()
                raise RenderError(f"the renderer did not start within {self.start_timeout:g}s")
            self._ready = True

    def _stop_when_idle(self, process):
        """The watch of one renderer process: stops it once unused for idle_timeout seconds."""
        while True:
            with self._lock:
                if self.process is not process:  # replaced or closed: another watch, or none, has it
                    return
                idle = time.monotonic() - self._last_used
                if idle >= self.idle_timeout:
                    self._release()
                    return
            time.sleep(self.idle_timeout - idle)

    def _spawn(self):
        self.process = zygote_spawn.spawn(
            WARM_TARGET, prepare=WARM_PREPARE, timeout=SPAWN_TIMEOUT, share=True
        )
        if self.process is None:
            self.process = self._start_cold()
        os.set_blocking(self.process.stdin.fileno(), False)
        os.set_blocking(self.process.stdout.fileno(), False)
        self._decoder = FrameDecoder()
        self._ready = False
        self._last_used = time.monotonic()
        self._idle_watch = threading.Thread(
            target=self._stop_when_idle, args=(self.process,), name="renderer-idle", daemon=True
        )
        self._idle_watch.start()

    @staticmethod
    def _start_cold():
        """A fresh interpreter: where no zygote forked this process, or it cannot fork a renderer."""
        env = {
            **os.environ,
            "PYTHONSAFEPATH": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")])),
        }
        argv = [sys.executable, "-m", "relieve_app.contact.render_process"]
        return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)

    def _stop(self):
        process, self.process = self.process, None
        if process is None:
            return
        process.kill()  # a renderer past its deadline may be stuck in C code: no polite way out
        process.wait()
        process.stdin.close()
        process.stdout.close()

    def _release(self):
        """Let go of the process: a shared one serves the other children on; any other is stopped."""
        if getattr(self.process, "shared", False):
            process, self.process = self.process, None
            process.release()
        else:
            self._stop()

    def _exchange(self, request, timeout):
        """Write `request`, then return the next frame; None when `timeout` passes first."""
        deadline = time.monotonic() + timeout
        stdin, stdout = self.process.stdin.fileno(), self.process.stdout.fileno()
        with selectors.DefaultSelector() as selector:
            selector.register(stdout, selectors.EVENT_READ)
            if request:
                selector.register(stdin, selectors.EVENT_WRITE)
            while (remaining := deadline - time.monotonic()) > 0:
                for key, _ in selector.select(remaining):
                    if key.fd == stdin:
                        try:
                            request = request[os.write(stdin, request) :]
                        except BrokenPipeError:
                            raise self._died() from None
                        if not request:
                            selector.unregister(stdin)
                        continue
                    data = os.read(stdout, 1 << 16)
                    if not data:
                        raise self._died()
                    frames = self._decoder.feed(data)
                    if frames:
                        return self._frame(frames)
        return None

    def _frame(self, frames):
        (frame, *extra) = frames
        if extra or isinstance(frame, FrameError):  # one request, one answer: anything else is a fault
            self._stop()
            raise RenderError(f"the renderer answered out of turn: {frames!r:.200}")
        return frame

    def _died(self):
        process = self.process
        self._stop()
        return RendererDied(
            f"the renderer exited with {process.returncode}", getattr(process, "shared", False)
        )


def _running(process):
    """A Popen, or a zygote's Helper whose exit code may stay unknown (``exited`` says it ended)."""
    return process is not None and process.poll() is None and not getattr(process, "exited", False)


def render_once(body, timeout=RENDER_TIMEOUT):
    """Render one body with a Renderer of its own, for one-off use (Mail keeps one)."""
    with Renderer(timeout=timeout) as renderer:
        return renderer.render(body)
