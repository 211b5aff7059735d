"""The renderer process: Markdown bodies in on stdin, sanitised HTML out on stdout.

Run by render.Renderer: forked by the master's zygote when the child was, as the one renderer that
zygote's children share (``serve_shared`` is the target of its spawn, ``relieve_app.pool.helper_loop``
its loop; ``prepare`` builds and warms a converter once, before the zygote's fork (``mail.rehearse``)
or in the zygote, shared copy-on-write by the renderers forked after it), else as
``python -m relieve_app.contact.render_process``, a fresh interpreter of one Renderer's own that
imports Markdown itself. It imports nothing from Django.
Frames are relieve_app.pool.framing's (length-prefixed JSON)::

    -> {"body": "<markdown>"}      <- {"html": "<fragment>"} or {"error": "<why>"}
    <- {"ready": true}             once, first, when the imports are done (the shared one: to each child)

A parent that stops waiting kills this process. One that dies leaves it to read end-of-file and
exit (a shared renderer, once every child using it has); if it is then stuck in a render, its CPU
limit ends it.
"""

import resource
import sys

from relieve_app.contact.markup import Converter
from relieve_app.pool import helper_loop
from relieve_app.pool.framing import FrameError

CPU_BUDGET = 10  # CPU seconds one render may use before the kernel ends this process (SIGXCPU)

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


def warmed_converter():
    converter = Converter()
    converter.to_html("warm *up*")  # the first conversion loads the extensions' modules
    return converter


def prepare():
    """Called in the zygote before its first renderer, or before the zygote was forked (the mail's
    warm-up, ``mail.rehearse``): the renderers forked after find their converter built and warm.
    Returns it; built once per process and those forked from it."""
    global _prepared
    if _prepared is None:
        _prepared = warmed_converter()
    return _prepared


def converter_here():
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a SIGXCPU leaves no core file behind
    return _prepared or warmed_converter()


def serve_shared():
    """The zygote's one renderer, serving every mail child that asks for it (zygote_spawn's share)."""
    converter = converter_here()
    helper_loop.serve_shared(lambda request: answer(converter, request), hello={"ready": True})


def serve():
    """A renderer of one Renderer's own, on stdin and stdout."""
    converter = converter_here()
    helper_loop.serve_one(lambda request: answer(converter, request), hello={"ready": True})


def main():
    try:
        serve()
    except (BrokenPipeError, KeyboardInterrupt):  # its parent stopped reading, or a terminal's Ctrl-C
        sys.exit(0)


if __name__ == "__main__":
    main()
