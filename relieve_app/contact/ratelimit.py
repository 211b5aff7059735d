"""A per-client limit on contact posts, counted in Django's cache so every process can share it.

`CONTACT_RATE_LIMIT` reads "requests/period": "5/m", "100/h", "10/5m" (ten per five minutes); the
period is s, m, h or d, with an optional multiplier; empty means no limit.

A sliding window: a client holds `limit` slots, and each accepted post takes a free one for `period`
seconds from that post (`cache.add`, atomic on Redis, Memcached and the local-memory cache). With
every slot taken, the wait is the time until the oldest one frees, so "wait N seconds" counts down
to the moment a post is accepted again. Only posts that would be accepted are counted: a visitor who
fixes a typo loses nothing. A slot whose time is up but whose cache entry lingers is freed by delete
then add; two processes doing that at once may let one extra post through.

The client is REMOTE_ADDR, unless REMOTE_ADDR is one of CONTACT_TRUSTED_PROXIES: then it is the
rightmost X-Forwarded-For address that is not a trusted proxy. Anyone can write X-Forwarded-For, so
trust only proxies that every request passes through and that append the address they saw.
"""

import logging
import math
import re
import time
from dataclasses import dataclass
from ipaddress import ip_address, ip_network

from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured

from relieve_app.conf import app_settings

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
    """Counts posts per client in a sliding window; `now` is passed in so tests can move time."""

    def __init__(self, rate, cache, *, scope="contact", now=time.time):
        self.rate = rate
        self.cache = cache
        self.scope = scope
        self.now = now

    def hit(self, client):
        """Count one post from `client`: None when allowed, else the whole seconds until it would be."""
        now = self.now()
        keys = [
            f"relieve:rate:{self.scope}:{self.rate.limit}/{self.rate.period}:{client}:{n}"
            for n in range(self.rate.limit)
        ]
        try:
            taken = self.cache.get_many(keys)
            for key in keys:
                if self._take(key, taken.get(key), now):
                    return None
            taken = self.cache.get_many(keys)
        except Exception:
            # An unreachable cache must not cost visitors their messages: let them through, loudly.
            logger.exception("Rate limit not applied: the %r cache failed", CACHE_ALIAS)
            return None
        oldest = min((at for at in taken.values() if isinstance(at, int | float)), default=now)
        return max(1, math.ceil(oldest + self.rate.period - now))

    def _take(self, key, taken_at, now):
        """Claim one slot: a free one, or one whose post is older than the period."""
        if taken_at is not None:
            if not isinstance(taken_at, int | float) or taken_at + self.rate.period > now:
                return False
            self.cache.delete(key)
        return self.cache.add(key, now, timeout=self.rate.period)


def client_address(request):
    """REMOTE_ADDR, or behind a trusted proxy the address that proxy saw (see the module's docstring)."""
    remote = request.META.get("REMOTE_ADDR", "")
    proxies = [ip_network(proxy, strict=False) for proxy in app_settings.CONTACT_TRUSTED_PROXIES]
    if not proxies or not _within(remote, proxies):
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for address in reversed([part for part in forwarded if part]):
        if not _within(address, proxies):
            return address if _within(address, None) else remote
    return remote


def _within(address, networks):
    """Whether `address` is an IP address in one of `networks` (None: whether it is an IP address)."""
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return networks is None or any(ip in network for network in networks)


def contact_retry_after(request):
    """Count an accepted contact post against CONTACT_RATE_LIMIT: None when allowed, else seconds to wait."""
    rate = parse_rate(app_settings.CONTACT_RATE_LIMIT)
    if rate is None:
        return None
    return RateLimiter(rate, caches[CACHE_ALIAS]).hit(client_address(request))
