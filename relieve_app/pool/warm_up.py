"""Work done once in the process a zygote's image comes from, so that the children it forks find it
done: the code they will run, already run.

CPython rewrites a function's bytecode in place as it runs it (the specialising interpreter: PEP 659),
and much of the library fills a cache on first use (a type's attribute cache, the email package's
header classes, a regular expression's compiled form). Done first in a forked child, that writing
lands in pages the child shares with its zygote, and the kernel copies each such page for it. Done
once before the fork, it is in the image every child shares. With the engine's own warm-up
(``rehearse_channel``) and the contact mail's (``relieve_app.contact.mail.rehearse``), a mail child
after 200 mails had copied 4.7 MiB from its zygote instead of 7.3 (``bench/memory.py``).

``register(function)`` adds a warm-up; ``run()`` calls each registered one that has not run in this
process, or in the process it was forked from. ``fork_zygote`` runs them before it forks, and so does
a zygote started fresh, once its preloads are imported (a preload's module may register some). A
warm-up must leave nothing that a fork would share: no thread, no event loop, no open connection or
file. One that fails is logged and skipped: a warm-up only saves memory, it never stops a start.
"""

import asyncio
import logging
import socket

log = logging.getLogger(__name__)

ROUNDS = 4  # CPython specialises an instruction on its second run: a few rounds settle most of them

_registered = []
_ran = set()


def register(function):
    """Add ``function`` (no arguments) to the warm-ups; returns it, to serve as a decorator."""
    if function not in _registered:
        _registered.append(function)
    return function


def run():
    """Call each warm-up not yet run here; returns how many ran. A failure is logged and skipped."""
    count = 0
    for function in list(_registered):
        if function in _ran:
            continue
        _ran.add(function)
        try:
            function()
        except Exception:
            log.warning("warm-up %s failed; children run it cold", _name(function), exc_info=True)
        else:
            count += 1
    return count


def _name(function):
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', function)}"


@register
def rehearse_channel():
    """The engine's own: events both ways over a Channel on a socket pair, in an event loop closed
    after, as each child's first calls would run them."""
    asyncio.run(_exchange(ROUNDS * 4))


async def _exchange(count):
    from .channel import Channel

    left, right = socket.socketpair()
    sender, receiver = Channel(left), Channel(right)
    heard = asyncio.get_running_loop().create_future()
    received = []

    def on_call(call_id, method, args):
        received.append(call_id)
        receiver.send("reply", call_id, None, {"value": args})
        if len(received) == count and not heard.done():
            heard.set_result(None)

    receiver.on("call", on_call)
    try:
        for n in range(count):
            sender.send("call", n, "run", [{"id": n, "queue": "default"}])
        await asyncio.wait_for(heard, timeout=5)
    finally:
        sender.close()
        receiver.close()
