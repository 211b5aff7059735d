"""Rates written as text, "requests/period": what CONTACT_RATE_LIMIT and ``@task(rate=...)`` read.

"5/m", "100/h", "10/5m" (ten per five minutes); the period is s, m, h or d with an optional
multiplier.
"""

import re
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured

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
