"""A child started with ForkTask.spawn: answers over Channel.from_parent().

The parent puts the folder holding relieve_app/ on its PYTHONPATH.
"""

import asyncio
import os
import socket
import sys

from relieve_app.pool import Channel


def write(sock, text):
    sock.sendall(text.encode())
    sock.close()


def send_socket(channel, text):
    """Send one end of a new socketpair to the parent, and write ``text`` into the other."""
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    channel.send("socket", theirs)
    write(mine, text)


async def main():
    channel = Channel.from_parent()
    done = asyncio.get_running_loop().create_future()
    channel.on("echo", lambda *args: channel.send("echo", *args))
    channel.on("write", write)
    channel.on("socket_please", lambda text: send_socket(channel, text))
    channel.on("quit", lambda code: done.done() or done.set_result(code))
    channel.on("close", lambda: done.done() or done.set_result(0))
    await channel.send("ready", os.getpid())
    return await done


sys.exit(asyncio.run(main()))
