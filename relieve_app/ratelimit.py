"""A per-client limit on contact posts, counted in Django's cache so every process can share it.

`CONTACT_RATE_LIMIT` reads "requests/period": "5/m", "100/h", "10/5m" (ten per five minutes); the
period is s, m, h or d, with an optional multiplier; empty means no limit.

A fixed window: requests are counted per client and per window of `period` seconds aligned on the
epoch, with `cache.add` (creates the counter) then `cache.incr`, both atomic on Redis, Memcached and
the local-memory cache (the file and database caches may let a racing burst through a few extra).
A client may send up to twice the limit across a window boundary; that is the price of one counter
per client instead of a log of timestamps.

The client is REMOTE_ADDR and nothing else. X-Forwarded-For is never read: any client can write it.
Behind a reverse proxy every visitor has the proxy's address and they share one limit, unless the
server or a middleware you trust sets REMOTE_ADDR from the proxy's header.
"""

import logging
import math
import re
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

CACHE_ALIAS = "default"
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
RATE = re.compile(r"\s*(?P<limit>\d+)\s*/\s*(?P<times>\d*)\s*(?P<unit>[smhd])\s*", re.ASCII)


@dataclass(frozen=True)
class Rate:
    limit: int
    period: int  # seconds


def parse_rate(value, setting="CONTACT_RATE_LIMIT"):
    """The Rate that `value` names, or None for no limit; ImproperlyConfigured says how to write it."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    match = RATE.fullmatch(value) if isinstance(value, str) else None
    times = int(match["times"] or 1) if match else 0
    if not match or not times:
        raise ImproperlyConfigured(
            f"{setting} = {value!r} is not a rate. Write requests/period with the period in s, m, h or "
            f"d and an optional multiplier, e.g. '5/m', '100/h' or '10/5m'; leave it empty for no limit."
        )
    if int(match["limit"]) < 1:
        raise ImproperlyConfigured(
            f"{setting} = {value!r} would refuse every message: allow at least 1, or leave it empty "
            f"for no limit."
        )
    return Rate(int(match["limit"]), times * UNITS[match["unit"]])


class RateLimiter:
    """Counts hits per client in fixed windows; `now` is passed in so tests can move time."""

    def __init__(self, rate, cache, *, scope="contact", now=time.time):
        self.rate = rate
        self.cache = cache
        self.scope = scope
        self.now = now

    def hit(self, client):
        """Count one request from `client`: None when allowed, else the seconds until it would be."""
        now = self.now()
        window = int(now // self.rate.period)
        left = max(1, math.ceil((window + 1) * self.rate.period - now))
        key = f"relieve:rate:{self.scope}:{self.rate.limit}/{self.rate.period}:{window}:{client}"
        try:
            count = self._count(key, timeout=left + 1)
        except Exception:
            # An unreachable cache must not cost visitors their messages: let them through, loudly.
            logger.exception("Rate limit not applied: the %r cache failed", CACHE_ALIAS)
            return None
        return left if count > self.rate.limit else None

    def _count(self, key, timeout):
        if self.cache.add(key, 1, timeout):
            return 1
        try:
            return self.cache.incr(key)
        except ValueError:  # expired between add and incr: this is the window's first hit again
            self.cache.add(key, 1, timeout)
            return 1


def contact_retry_after(request):
    """Count this contact post against CONTACT_RATE_LIMIT: None when allowed, else seconds to wait."""
    rate = parse_rate(settings.CONTACT_RATE_LIMIT)
    if rate is None:
        return None
    return RateLimiter(rate, caches[CACHE_ALIAS]).hit(request.META.get("REMOTE_ADDR", ""))
