"""The queue example's task: compress and hash the chunk given as its argument, report, and exit."""

import asyncio
import hashlib
import zlib


class Chunk:
    def set_channel(self, channel):
        self.channel = channel

    def start(self, index, text):
        # Work after start() returns, so the master sees this child start before it ends.
        self.working = asyncio.ensure_future(self.work(index, text))

    async def work(self, index, text):
        data = text.encode()
        packed = zlib.compress(data, 9)
        await self.channel.send("chunk", index, len(data), len(packed), hashlib.sha256(packed).hexdigest())
        self.channel.close()  # the container exits with code 0 once its channel is closed
