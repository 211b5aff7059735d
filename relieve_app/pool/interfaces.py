"""Interfaces: what a task does with its child's output."""

import asyncio
import logging
import logging.handlers
from pathlib import Path


class Logger:
    """Write a child's stdout and stderr to files, rotated by size or by time.

    ``stdout``/``stderr`` are paths that may contain ``{name}`` (the task's name).
    ``max_bytes`` rotates by size (RotatingFileHandler); ``when`` ("S", "M", "H", "D",
    "midnight", ...) rotates by time (TimedRotatingFileHandler). One handler per file
    lives across restarts of the same task.
    """

    captures_output = True

    def __init__(self, stdout, stderr=None, *, max_bytes=0, when=None, interval=1, backup_count=5):
        if max_bytes and when:
            raise ValueError("rotate by size (max_bytes) or by time (when), not both")
        self.stdout = str(stdout)
        self.stderr = str(stderr) if stderr is not None else None
        self.max_bytes = max_bytes
        self.when = when
        self.interval = interval
        self.backup_count = backup_count
        self._handlers = {}
        self._pumps = set()

    def handler(self, path):
        if path not in self._handlers:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            if self.when:
                handler = logging.handlers.TimedRotatingFileHandler(
                    path, when=self.when, interval=self.interval, backupCount=self.backup_count
                )
            else:
                handler = logging.handlers.RotatingFileHandler(
                    path, maxBytes=self.max_bytes, backupCount=self.backup_count
                )
            handler.setFormatter(logging.Formatter("%(message)s"))
            self._handlers[path] = handler
        return self._handlers[path]

    def attach(self, task, process):
        streams = [(process.stdout, self.stdout), (process.stderr, self.stderr or self.stdout)]
        for stream, path in streams:
            if stream is not None:
                pump = asyncio.ensure_future(self._pump(stream, self.handler(path.format(name=task.name))))
                self._pumps.add(pump)
                pump.add_done_callback(self._pumps.discard)

    async def _pump(self, stream, handler):
        while True:
            try:
                line = await stream.readline()
            except ValueError:  # over the stream's limit, and dropped: keep draining, or the child blocks
                line = b"[relieve: a line too long to log was dropped]\n"
            if not line:
                break
            text = line.decode(errors="replace").rstrip("\n")
            handler.emit(logging.makeLogRecord({"msg": text, "levelno": logging.INFO}))
        handler.flush()

    def close(self):
        for handler in self._handlers.values():
            handler.close()
        self._handlers.clear()
