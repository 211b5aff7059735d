"""The renderer process: Markdown bodies in on stdin, sanitised HTML out on stdout.

Run by render.Renderer: forked by the master's zygote when the child was, as the one renderer that
zygote's children share (``serve_shared`` is the target of its spawn, ``relieve_app.pool.shared_helper``
its loop; ``prepare`` builds and warms a converter in the zygote once, shared copy-on-write by the
renderers forked after it), else as ``python -m relieve_app.contact.render_process``, a fresh
interpreter of one Renderer's own that imports Markdown itself. It imports nothing from Django.
Frames are relieve_app.pool.framing's (length-prefixed JSON)::

    -> {"body": "<markdown>"}      <- {"html": "<fragment>"} or {"error": "<why>"}
    <- {"ready": true}             once, first, when the imports are done (the shared one: to each child)

A parent that stops waiting kills this process. One that dies leaves it to read end-of-file and
exit (a shared renderer, once every child using it has); if it is then stuck in a render, its CPU
limit ends it.
"""

import os
import resource
import sys

from relieve_app.contact.markup import Converter
from relieve_app.pool import shared_helper
from relieve_app.pool.framing import FrameDecoder, FrameError, encode

CPU_BUDGET = 10  # CPU seconds one render may use before the kernel ends this process (SIGXCPU)
READ_SIZE = 1 << 16

_prepared = None  # the converter prepare() built, in the zygote, before this process was forked


def limit_cpu(budget):
    """Let the kernel end this process once it used `budget` more CPU seconds than now."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = used + budget if hard == resource.RLIM_INFINITY else min(used + budget, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def answer(converter, request):
    if isinstance(request, FrameError) or not isinstance(request.get("body"), str):
        return {"error": f"not a render request: {request}"[:200]}
    limit_cpu(CPU_BUDGET)
    try:
        return {"html": converter.to_html(request["body"])}
    except Exception as exc:  # RecursionError included: the body goes out as text
        return {"error": f"{type(exc).__name__}: {exc}"[:200]}


def write(fd, frame):
    data = encode(frame)
    while data:
        data = data[os.write(fd, data) :]


def warmed_converter():
    converter = Converter()
    converter.to_html("warm *up*")  # the first conversion loads the extensions' modules
    return converter


def prepare():
    """Called once in the zygote: the renderers it forks find their converter built and warm."""
    global _prepared
    _prepared = warmed_converter()


def converter_here():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a SIGXCPU leaves no core file behind
    return _prepared or warmed_converter()


def serve_shared():
    """The zygote's one renderer, serving every mail child that asks for it (zygote_spawn's share)."""
    converter = converter_here()
    shared_helper.serve(lambda request: answer(converter, request), hello={"ready": True})


def serve(stdin=0, stdout=1):
    converter = converter_here()
    write(stdout, {"ready": True})
    decoder = FrameDecoder()
    while data := os.read(stdin, READ_SIZE):
        for request in decoder.feed(data):
            try:
                write(stdout, answer(converter, request))
            except FrameError as exc:  # the HTML outgrew a frame
                write(stdout, {"error": str(exc)})


def main():
    try:
        serve()
    except (BrokenPipeError, KeyboardInterrupt):  # its parent stopped reading, or a terminal's Ctrl-C
        sys.exit(0)


if __name__ == "__main__":
    main()
