"""The socket example's task: clients' sockets arrive as ``socket`` events; each call answers one."""

import collections
import os


class Heavy:
    def __init__(self):
        self.sockets = collections.deque()  # appended on the event loop, taken on the lane thread

    def set_channel(self, channel):
        channel.on("socket", self.sockets.append)

    def do_heavy_stuff(self, n):
        answer = sum(i * i for i in range(n + 1))
        # The master sends the socket before the call on the same channel, so it is already here.
        sock = self.sockets.popleft()
        with sock:
            sock.setblocking(True)  # the master's loop made it non-blocking; this thread may wait
            sock.sendall(f"{n} {answer} {os.getpid()}\n".encode())
