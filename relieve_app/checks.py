"""System checks: a bad setting is reported when the project starts, not on a visitor's first post.

The errors here also stop every process at start (see ``refuse_to_start``, called from apps.py):
gunicorn and runrelieve run no system checks, and a server that accepts mail it cannot deliver
would answer 202 and mark it `sent`.
"""

from email.utils import parseaddr

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import validate_email

from relieve_app.conf import DEFAULTS, app_settings, backend_alias, backend_queues, check_settings
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
    "CONTACT_RECIPIENT": "who receives the contact mail, e.g. CONTACT_RECIPIENT=inbox@example.org",
    "DEFAULT_FROM_EMAIL": "the From of the contact mail: DEFAULT_FROM_EMAIL='Site <noreply@example.org>'",
}


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
                    hint=f"Set it to {meaning}.",
                    obj=f"settings.{name}",
                    id="relieve_app.E002",
                )
            )
    return errors


def check_contact_mail_queue(app_configs, **kwargs):
    """A queue the backend lacks would fail the mail task at import: it takes another meanwhile."""
    chosen = getattr(settings, "CONTACT_MAIL_QUEUE", None)
    queues = backend_queues()
    if chosen is None or chosen in queues:
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
    """In production a backend that delivers nothing would mark every message `sent`: refuse it
    unless RELIEVE_ALLOW_DEV_MAIL says it is meant, and then still warn."""
    backend = mail_backend()
    if settings.DEBUG or backend not in DEV_MAIL_BACKENDS:
        return []
    does = DEV_MAIL_BACKENDS[backend]
    message = f"DEBUG is off but the mail backend {backend} {does}: nothing is delivered."
    if app_settings.RELIEVE_ALLOW_DEV_MAIL:
        return [checks.Warning(message, obj="settings.MAILERS", id="relieve_app.W002")]
    return [
        checks.Error(
            message,
            hint="Set EMAIL_URL to an SMTP server, e.g. smtp+tls://user:password@smtp.example.org:587; "
            "or, to keep this backend on purpose, set RELIEVE_ALLOW_DEV_MAIL=true.",
            obj="settings.MAILERS",
            id="relieve_app.E003",
        )
    ]


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


STARTUP_CHECKS = (
    check_contact_rate_limit,
    check_addresses,
    check_contact_mail_queue,
    check_mail_backend,
    check_settings,
)


class SettingsRefused(ImproperlyConfigured):
    """Settings no process may run with; the message lists each problem and its fix."""


def refuse_to_start():
    """Raise SettingsRefused naming every error of STARTUP_CHECKS, so no process runs with them."""
    errors = [error for check in STARTUP_CHECKS for error in check(None) if error.is_serious()]
    if errors:
        lines = [f"{error.msg} {error.hint or ''}".strip() for error in errors]
        raise SettingsRefused("relieve cannot start:\n  " + "\n  ".join(lines))


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


def mail_backend():
    """The dotted path of the default mailer's backend, from MAILERS or the older EMAIL_BACKEND."""
    mailers = getattr(settings, "MAILERS", None)
    if mailers is not None:
        return mailers.get("default", {}).get("BACKEND")
    return settings.EMAIL_BACKEND
