"""A CallableTask script with one member for every case the tests need."""

import asyncio
import importlib
import os
import signal
import sys
import threading
import time


class Calc:
    value = 42  # a plain attribute for `get`

    def __init__(self):
        self.channel = None
        self.arguments = []
        self.released = threading.Event()

    def set_channel(self, channel):
        self.channel = channel
        channel.on("echo", lambda *args: channel.send("echo", *args))
        channel.on("explode", self.explode)
        channel.on("aexplode", self.aexplode)
        channel.on("release", lambda: self.released.set())

    def start(self, *arguments):
        self.arguments = list(arguments)

    def explode(self, *_):
        raise RuntimeError("listener blew up")

    async def aexplode(self, *_):
        raise RuntimeError("async listener blew up")

    async def ignore_sigterm(self):
        """Runs on the loop, in the main thread, where signal handlers can be set."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def die(self, code):
        os._exit(code)

    def add(self, a, b):
        return a + b

    def loaded(self, module):
        return module in sys.modules

    def attribute(self, module, name):
        return getattr(importlib.import_module(module), name)

    def count_of(self, module, name):
        """The reference count of a module's attribute: immortal if the zygote made it so."""
        return sys.getrefcount(getattr(importlib.import_module(module), name))

    def spin(self, seconds):
        """Busy for ``seconds`` of CPU time: a forked child has used next to none before."""
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass

    def slow(self, seconds):
        time.sleep(seconds)
        return seconds

    def block(self):
        """Hold the lane until the parent sends ``release``: a slow call the test ends itself."""
        return self.released.wait(30)

    async def aslow(self, seconds):
        await asyncio.sleep(seconds)
        return seconds

    def boom(self, message="boom"):
        raise ValueError(message)

    def not_json(self):
        return object()

    def pid(self):
        return os.getpid()

    def env(self, key):
        return os.environ.get(key)

    def cwd(self):
        return os.getcwd()

    def args(self):
        return self.arguments

    def report(self, *args):
        """Send an event from the lane thread, and once more from a thread of its own."""
        self.channel.send("report", "lane", *args)
        thread = threading.Thread(target=self.channel.send, args=("report", "thread", *args))
        thread.start()
        thread.join()

    def say(self, text, stream="stdout", times=1):
        """Print to the child's stdout or stderr, for the Logger interface."""
        out = getattr(sys, stream)
        for _ in range(times):
            print(text, file=out)
        out.flush()

    def _private(self):
        return "hidden"
