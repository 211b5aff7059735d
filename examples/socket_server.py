"""The master accepts connections and passes each socket to a child, which writes the answer itself.

Usage: python -m examples.socket_server [--port 0] [--unix PATH] [--tasks 4] [--n N]

Try it with ``nc 127.0.0.1 <port>``: the line that comes back is ``n sum-of-squares child-pid``.
"""

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import stat

from relieve_app.pool import CallableTask, CloudWorker, RelieveError

HEAVY = "examples.heavy:Heavy"

log = logging.getLogger(__name__)


def listen(host="127.0.0.1", port=0, unix=None):
    """A plain listening socket: ``loop.sock_accept`` then gives real ``socket.socket`` objects,
    which is what a Channel can pass to a child."""
    if unix is None:
        sock = socket.create_server((host, port))
    else:
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.stat(unix).st_mode):
                os.unlink(unix)  # left by an earlier run; any other file makes bind() fail below
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(unix)
        sock.listen()
    sock.setblocking(False)
    return sock


async def relieve(worker, conn, n):
    """Hand one client to a child; from here on the master never touches it."""
    try:
        task = await worker.send("socket", conn)
        await task.call("do_heavy_stuff", n)
    except RelieveError as exc:
        log.warning("no child could take the connection: %s", exc)
    finally:
        conn.close()  # already closed once sent; this only matters when sending failed


async def serve(listener, worker, n, connections=None):
    """Accept ``connections`` clients (forever when None), each handed to a child."""
    loop = asyncio.get_running_loop()
    handlers = set()
    accepted = 0
    try:
        while connections is None or accepted < connections:
            conn, _address = await loop.sock_accept(listener)
            accepted += 1
            handler = asyncio.ensure_future(relieve(worker, conn, n))
            handlers.add(handler)
            handler.add_done_callback(handlers.discard)
    finally:
        await asyncio.gather(*handlers, return_exceptions=True)


async def main(
    port=0, *, host="127.0.0.1", unix=None, tasks=4, n=1_000_000, connections=None, on_listening=None
):
    """Serve until cancelled or ``connections`` clients were handed over; returns the children's pids."""
    worker = CloudWorker()
    for i in range(tasks):
        worker.add(CallableTask(HEAVY, restart=True, name=f"task{i}"))
    worker.on("error", lambda message, _stack: log.error("child error: %s", message))
    listener = listen(host, port, unix)
    try:
        await worker.run()
        address = listener.getsockname()
        (on_listening or announce)(address)
        await serve(listener, worker, n, connections)
        return [task.pid for task in worker.tasks.values()]
    finally:
        listener.close()
        if unix is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(unix)
        await worker.drain(timeout=5.0)  # children answer the clients they hold before they stop
        await worker.kill()


def announce(address):
    where = address if isinstance(address, str) else "{}:{}".format(*address[:2])
    print(f"listening on {where}", flush=True)


async def run_until_signalled(coro):
    """SIGTERM and SIGINT cancel the server, so ``main`` stops its children on the way out."""
    loop = asyncio.get_running_loop()
    serving = asyncio.ensure_future(coro)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, serving.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await serving


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--unix", metavar="PATH", help="listen on a Unix socket instead of TCP")
    parser.add_argument("--tasks", type=int, default=4, help="child processes")
    parser.add_argument("--n", type=int, default=1_000_000, help="work per connection")
    return parser.parse_args(argv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args()
    asyncio.run(
        run_until_signalled(main(args.port, host=args.host, unix=args.unix, tasks=args.tasks, n=args.n))
    )
