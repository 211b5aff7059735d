"""A QueueWorker job: runs for a moment after start(seconds, code), then exits with `code`."""

import asyncio
import sys


class Job:
    def start(self, seconds=0.1, code=0):
        asyncio.get_running_loop().call_later(seconds, sys.exit, code)
