"""A master's LISTEN connection: PostgreSQL notifications in, `on_notify(queue, id, hints)` calls out,
and `on_sweep(queue)` for a payload of ``SWEEP`` (rows announced together, ``notifying.Batch``).

Its own autocommit connection on the master's event loop, apart from the recorder's: a
notification is a wake-up, not a write. When the connection drops it is opened again with a
growing delay, and `on_connect` runs each time so the master can sweep for what it missed.
"""

import asyncio
import json
import logging

import psycopg
from psycopg import sql

from relieve_app.tasks.notifying import SWEEP

log = logging.getLogger(__name__)


class Listener:
    def __init__(self, params, channels, on_notify, on_connect=None, *, on_sweep=None, max_delay=10.0):
        self.params = dict(params)
        self.channels = dict(channels)  # channel name -> queue
        self.on_notify = on_notify
        self.on_connect = on_connect
        self.on_sweep = on_sweep
        self.max_delay = max_delay
        self.connected = asyncio.Event()

    async def run(self):
        """Listen until cancelled; a lost connection is reopened, never the end of the master."""
        delay = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(**self.params, autocommit=True) as conn:
                    for name in self.channels:
                        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(name)))
                    self.connected.set()
                    delay = 0.5
                    if self.on_connect is not None:
                        self.on_connect()
                    async for notification in conn.notifies():
                        self._deliver(notification.channel, notification.payload)
            except psycopg.Error as exc:
                log.warning("LISTEN connection lost (%s); reconnecting in %.1fs", exc, delay)
            self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_delay)

    def _deliver(self, channel, payload):
        queue = self.channels.get(channel)
        if payload == SWEEP:
            if queue is not None and self.on_sweep is not None:
                try:
                    self.on_sweep(queue)
                except Exception:  # as below: the periodic sweep still finds the rows
                    log.exception("handling a notice to sweep %s failed", queue)
            return
        row_id, hints = _parse(payload)
        if row_id is None:
            log.warning("ignoring a notification on %s with a payload that is no id: %.50r", channel, payload)
            return
        if queue is None or row_id <= 0:
            return
        try:
            self.on_notify(queue, row_id, hints)
        except Exception:  # a bug in the callback costs this wake-up; the sweep still finds the row
            log.exception("handling a notification for %s %s failed", queue, row_id)


def _parse(payload):
    """``'42'``, or ``'{"id": 42, "priority": 3, "run_after": 1.7e9}'``: (id, hints) or (None, {})."""
    try:
        return int(payload), {}
    except ValueError:
        pass
    try:
        data = json.loads(payload)
    except ValueError:
        return None, {}
    row_id = data.get("id") if isinstance(data, dict) else None
    if not isinstance(row_id, int) or isinstance(row_id, bool):
        return None, {}
    return row_id, {key: data[key] for key in ("priority", "run_after") if key in data}
