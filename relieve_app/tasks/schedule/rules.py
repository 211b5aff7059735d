"""When an entry runs: a five-field cron rule in a time zone, or every so many seconds.

Cron rules are read by cronsim, which follows Debian cron at a change of the clock. A rule with a
fixed minute and hour (``30 2 * * *``) runs once a day whatever the clock does: a time skipped when
the clock springs forward runs at the first minute after the jump (03:00), and a time the clock
passes twice when it falls back runs at the first pass only. A rule whose hour is ``*`` or a step
(``*/30 * * * *``) follows elapsed time, so it runs in each of the two passes of a repeated hour.

``every`` slots are whole multiples of the period since the Unix epoch, so every master, on any
host, computes the same slots without talking to the others.
"""

import math
import re
from datetime import UTC, datetime, timedelta

from cronsim import CronSim, CronSimError

EVERY = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", re.ASCII)
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


class RuleError(ValueError):
    """A rule that cannot be read; the message says what to write instead."""


def every_seconds(value):
    """``90``, ``"90s"``, ``"10m"`` or ``"2h"`` as seconds; RuleError otherwise."""
    if isinstance(value, bool):
        seconds = None
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := EVERY.fullmatch(value)):
        seconds = float(match[1]) * UNITS[match[2]]
    else:
        seconds = None
    if seconds is None or not math.isfinite(seconds) or seconds < 1:
        raise RuleError(f"every = {value!r}: write seconds (at least 1) or a string like '90s', '10m', '2h'")
    return seconds


class Every:
    def __init__(self, value):
        self.seconds = every_seconds(value)
        self.text = f"every {value}" if isinstance(value, str) else f"every {value:g}s"

    def latest(self, until):
        """Slots at or before ``until``, the latest first."""
        k = math.floor(until.timestamp() / self.seconds)
        while True:
            yield datetime.fromtimestamp(k * self.seconds, UTC)
            k -= 1

    def next_after(self, moment):
        k = math.floor(moment.timestamp() / self.seconds) + 1
        return datetime.fromtimestamp(k * self.seconds, UTC)


class Cron:
    def __init__(self, expression, zone):
        if not isinstance(expression, str) or len(expression.split()) != 5:
            raise RuleError(f"cron = {expression!r}: write five fields, like '15 3 * * *'")
        try:
            CronSim(expression, datetime(2000, 1, 1, tzinfo=zone))
        except CronSimError as exc:
            raise RuleError(f"cron = {expression!r}: {exc}") from None
        self.expression = expression
        self.zone = zone
        self.text = f"cron {expression}"

    def latest(self, until):
        # cronsim skips the starting moment going backwards, so start one second after it.
        start = (until + timedelta(seconds=1)).astimezone(self.zone).replace(microsecond=0)
        for slot in CronSim(self.expression, start, reverse=True):
            yield slot.astimezone(UTC)

    def next_after(self, moment):
        return next(iter(CronSim(self.expression, moment.astimezone(self.zone)))).astimezone(UTC)


def due(rule, after, until, limit):
    """The slots in ``(after, until]``, at most ``limit`` of them (the latest), oldest first."""
    found = []
    for slot in rule.latest(until):
        if slot <= after or len(found) >= limit:
            break
        found.append(slot)
    return found[::-1]
