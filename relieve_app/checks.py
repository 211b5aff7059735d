"""System checks: a bad setting is reported when the project starts, not on a visitor's first post."""

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from relieve_app.conf import app_settings
from relieve_app.ratelimit import CACHE_ALIAS, parse_rate

PER_PROCESS_CACHES = ("django.core.cache.backends.locmem.LocMemCache",)


def check_contact_rate_limit(app_configs, **kwargs):
    try:
        parse_rate(app_settings.CONTACT_RATE_LIMIT)
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), obj="settings.CONTACT_RATE_LIMIT", id="relieve_app.E001")]
    return []


def check_rate_limit_cache(app_configs, **kwargs):
    """Deployment only: each web process has its own local-memory cache, hence its own count."""
    try:
        rate = parse_rate(app_settings.CONTACT_RATE_LIMIT)
    except ImproperlyConfigured:
        return []  # E001 says it
    backend = settings.CACHES.get(CACHE_ALIAS, {}).get("BACKEND")
    if rate is None or backend not in PER_PROCESS_CACHES:
        return []
    return [
        checks.Warning(
            f"CONTACT_RATE_LIMIT is counted in {backend}, which each web process keeps for itself: "
            "with several processes a client may send that many messages to each of them.",
            hint="Set CACHE_URL to a shared cache, e.g. redis://host:6379/0 or filecache:///var/tmp/relieve.",
            obj="settings.CACHES",
            id="relieve_app.W001",
        )
    ]
