"""System checks: a bad setting is reported when the project starts, not on a visitor's first post.

Each says what to change in the project's own settings. Errors stop what runs the checks (runserver,
runrelieve, migrate, check); gunicorn runs none, so the contact page refuses on them too (``refusal``,
called by the view). A mail backend that delivers nothing is only a warning where nothing is sent:
``runrelieve``, the one process that sends, refuses to start on it, and the messages wait for it.
"""

from email.utils import parseaddr

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import validate_email

from relieve_app.conf import (
    DEFAULTS,
    app_settings,
    backend_alias,
    backend_queues,
    check_settings,
    set_by_project,
)
from relieve_app.contact.ratelimit import CACHE_ALIAS, parse_rate

PER_PROCESS_CACHES = ("django.core.cache.backends.locmem.LocMemCache",)

# Mail backends that deliver nothing: what each does with a message instead.
DEV_MAIL_BACKENDS = {
    "django.core.mail.backends.console.EmailBackend": "prints each mail on standard output",
    "django.core.mail.backends.filebased.EmailBackend": "writes each mail to a file",
    "django.core.mail.backends.locmem.EmailBackend": "keeps each mail in memory",
    "django.core.mail.backends.dummy.EmailBackend": "drops each mail",
}

ADDRESS_SETTINGS = {
    "CONTACT_RECIPIENT": "who receives the contact mail, e.g. 'inbox@example.org'",
    "DEFAULT_FROM_EMAIL": "the From of the contact mail, e.g. 'Site <noreply@example.org>'",
}

SMTP = "django.core.mail.backends.smtp.EmailBackend"


class CannotDeliver(checks.Warning):
    """Settings under which no mail is delivered: a warning for migrate, check and the web server,
    whose messages wait; runrelieve, which would mark them `sent`, refuses to start on it."""


def check_contact_rate_limit(app_configs, **kwargs):
    try:
        parse_rate(app_settings.CONTACT_RATE_LIMIT)
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), obj="settings.CONTACT_RATE_LIMIT", id="relieve_app.E001")]
    return []


def check_addresses(app_configs, **kwargs):
    """An empty or malformed address is accepted by the form's flow and fails, or vanishes, at send time."""
    errors = []
    for name, meaning in ADDRESS_SETTINGS.items():
        value = getattr(app_settings, name) if name in DEFAULTS else getattr(settings, name, "")
        if not is_address(value):
            errors.append(
                checks.Error(
                    f"{name} = {value!r} is not an email address.",
                    hint=f"Set {name} to {meaning}.",
                    obj=f"settings.{name}",
                    id="relieve_app.E002",
                )
            )
    return errors


def check_contact_mail_queue(app_configs, **kwargs):
    """A queue the backend lacks would fail the mail task at import: it takes another meanwhile."""
    chosen = app_settings.CONTACT_MAIL_QUEUE
    queues = backend_queues()
    if not set_by_project("CONTACT_MAIL_QUEUE") or chosen in queues:
        return []
    alias = backend_alias()
    return [
        checks.Error(
            f"CONTACT_MAIL_QUEUE = {chosen!r} is not a queue of TASKS[{alias!r}], which lists {queues}.",
            hint=f"Add {chosen!r} to TASKS[{alias!r}]['QUEUES'], or set CONTACT_MAIL_QUEUE to one of "
            f"{queues} (or remove it: the contact mail then goes on 'mail' if listed, else 'default').",
            obj="settings.CONTACT_MAIL_QUEUE",
            id="relieve_app.E004",
        )
    ]


def check_mail_backend(app_configs, **kwargs):
    """In production a backend that delivers nothing would mark every message `sent`: runrelieve
    refuses it unless RELIEVE_ALLOW_DEV_MAIL says it is meant, and then still warns."""
    backend = mail_backend()
    if settings.DEBUG or backend not in DEV_MAIL_BACKENDS:
        return []
    does = DEV_MAIL_BACKENDS[backend]
    where = mail_setting()
    message = f"DEBUG is off but the mail backend in {where}, {backend}, {does}: nothing is delivered."
    if app_settings.RELIEVE_ALLOW_DEV_MAIL:
        return [checks.Warning(message, obj=f"settings.{where}", id="relieve_app.W002")]
    return [
        CannotDeliver(
            f"{message} runrelieve will not start until it is changed; messages posted meanwhile wait.",
            hint=f"{smtp_hint()}. Or, to keep this backend on purpose, set RELIEVE_ALLOW_DEV_MAIL = True.",
            obj=f"settings.{where}",
            id="relieve_app.W003",
        )
    ]


def smtp_hint():
    """How to send through an SMTP server, in the settings the project uses (Django 6.1 takes either
    MAILERS or the older EMAIL_* settings, never both)."""
    if mail_setting() == "MAILERS":
        return (
            "Point MAILERS['default'] at your SMTP server, e.g. {'BACKEND': "
            f"'{SMTP}', 'OPTIONS': {{'host': 'smtp.example.org', 'port': 587, 'use_tls': True}}}} "
            "(MAILERS replaces EMAIL_BACKEND and EMAIL_HOST since Django 6.1)"
        )
    return (
        f"Set EMAIL_BACKEND = '{SMTP}' and EMAIL_HOST = 'smtp.example.org' "
        "(with EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD and EMAIL_USE_TLS as your server needs)"
    )


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
            hint=f"Point CACHES[{CACHE_ALIAS!r}] at a cache the web processes share, e.g. "
            "'django.core.cache.backends.redis.RedisCache' or "
            "'django.core.cache.backends.filebased.FileBasedCache'.",
            obj="settings.CACHES",
            id="relieve_app.W001",
        )
    ]


STARTUP_CHECKS = (
    check_contact_rate_limit,
    check_addresses,
    check_contact_mail_queue,
    check_mail_backend,
    check_settings,
)


def refusal(sending=False):
    """One paragraph naming each problem of STARTUP_CHECKS and its fix, or "" when there is none.

    The errors count everywhere; CannotDeliver only for the process that sends (``sending``).
    """
    found = [
        message
        for check in STARTUP_CHECKS
        for message in check(None)
        if message.is_serious() or (sending and isinstance(message, CannotDeliver))
    ]
    return " ".join(f"{message.msg} {message.hint or ''}".strip() for message in found)


def is_address(value):
    """One address, bare or with a display name ("Site <noreply@example.org>"), on one line."""
    if not isinstance(value, str) or "\n" in value or "\r" in value:
        return False
    _name, address = parseaddr(value)
    try:
        validate_email(address)
    except ValidationError:
        return False
    return True


def mail_setting():
    """Which setting names the project's mail backend: MAILERS, or the older EMAIL_BACKEND."""
    return "MAILERS" if getattr(settings, "MAILERS", None) is not None else "EMAIL_BACKEND"


def mail_backend():
    """The dotted path of the default mailer's backend, from MAILERS or the older EMAIL_BACKEND."""
    if mail_setting() == "MAILERS":
        return settings.MAILERS.get("default", {}).get("BACKEND")
    return settings.EMAIL_BACKEND
