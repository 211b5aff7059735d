"""A per-client limit on contact posts, counted in Django's cache so every process can share it.

`CONTACT_RATE_LIMIT` reads "requests/period": "5/m", "100/h", "10/5m" (ten per five minutes); the
period is s, m, h or d, with an optional multiplier; empty means no limit (``tasks/rates.py``).

A sliding window counted in slices: the period is cut into SLICES slices of equal length, aligned on
the clock, and each client has one counter per slice (one cache key). A post is accepted while the
accepted posts of the current slice and of the SLICES before it add up to less than the limit. Each
POST reads SLICES + 1 keys and increments one, whatever the limit: 100000/m costs what 5/m does.

The approximation is on the safe side: a post is remembered for between one period and one period
plus a slice (a tenth), never less, so no window of one period, wherever it starts, ever holds more
accepted posts than the limit; a visitor told to wait may wait up to a tenth of the period longer
than an exact log would say. "Wait N seconds" counts down to the moment a post is accepted again.
Only posts that would be accepted are counted: a visitor who fixes a typo loses nothing. Two
processes taking the last slot at once both increment; the one that sees the sum over the limit
gives its slot back (`cache.incr` and `decr` are atomic on Redis, Memcached and the local-memory cache).

The client is REMOTE_ADDR, unless REMOTE_ADDR is one of CONTACT_TRUSTED_PROXIES: then it is the
rightmost X-Forwarded-For address that is not a trusted proxy. Anyone can write X-Forwarded-For, so
trust only proxies that every request passes through and that append the address they saw.
"""

import logging
import math
import time
from ipaddress import ip_address, ip_network

from django.core.cache import caches

from relieve_app.conf import app_settings
from relieve_app.tasks.rates import Rate, parse_rate

__all__ = [
    "CACHE_ALIAS",
    "SLICES",
    "Rate",
    "RateLimiter",
    "client_address",
    "contact_give_back",
    "contact_retry_after",
    "parse_rate",
]

logger = logging.getLogger(__name__)

CACHE_ALIAS = "default"
SLICES = 10  # slices per period: the cost of a POST, and how much longer than exact a wait may be


class RateLimiter:
    """Counts posts per client in a sliding window of slices; `now` is passed in so tests can move time."""

    def __init__(self, rate, cache, *, scope="contact", now=time.time):
        self.rate = rate
        self.cache = cache
        self.scope = scope
        self.now = now

    def hit(self, client):
        """Count one post from `client`: None when allowed, else the whole seconds until it would be."""
        now = self.now()
        width = self.rate.period / SLICES
        current = math.floor(now / width)
        keys = [self._key(client, current - age) for age in range(SLICES + 1)]  # this slice first
        try:
            found = self.cache.get_many(keys)
            counts = [_count(found.get(key)) for key in keys]
            if sum(counts) < self.rate.limit:
                mine = self._increment(keys[0], math.ceil((SLICES + 2) * width))
                if sum(counts[1:]) + mine <= self.rate.limit:
                    return None
                self.cache.decr(keys[0])  # another process took the last slot first: give this one back
                counts[0] = mine - 1
        except Exception:
            # An unreachable cache must not cost visitors their messages: let them through, loudly.
            logger.exception("Rate limit not applied: the %r cache failed", CACHE_ALIAS)
            return None
        return self._wait(counts, current, width, now)

    def give_back(self, client):
        """Uncount the post just counted: it was accepted by the limit but could not be taken."""
        key = self._key(client, math.floor(self.now() / (self.rate.period / SLICES)))
        try:
            if _count(self.cache.get(key)):
                self.cache.decr(key)
        except Exception:
            logger.exception("A refused post could not be uncounted: the %r cache failed", CACHE_ALIAS)

    def _key(self, client, slice_number):
        return f"relieve:rate:{self.scope}:{self.rate.limit}/{self.rate.period}:{client}:{slice_number}"

    def _increment(self, key, timeout):
        """The slice's count after adding this post."""
        for _attempt in range(3):
            if self.cache.add(key, 1, timeout=timeout):
                return 1
            try:
                return self.cache.incr(key)
            except ValueError:  # it expired between the two calls: add it again
                continue
        return self.cache.incr(key)

    def _wait(self, counts, current, width, now):
        """Seconds until enough old slices have left the window for one more post."""
        total = sum(counts)
        for age in range(SLICES, -1, -1):  # the oldest slice leaves first
            total -= counts[age]
            if total < self.rate.limit:
                forgotten_at = (current - age + SLICES + 1) * width
                return max(1, math.ceil(forgotten_at - now - 1e-9))
        return max(1, math.ceil(width))


def _count(value):
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


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


def contact_give_back(request):
    """The post counted by contact_retry_after was not taken (503): it does not count against the visitor."""
    rate = parse_rate(app_settings.CONTACT_RATE_LIMIT)
    if rate is not None:
        RateLimiter(rate, caches[CACHE_ALIAS]).give_back(client_address(request))
