"""The app's settings: a default for each, overridden by the host project's settings module.

Every module of the app reads them here, as ``app_settings.NAME``. Each read goes through
``django.conf.settings`` at that moment, so a value changed later (tests, ``override_settings``)
is seen at once: nothing is cached at import. ``check_settings`` is the system check that names a
bad value and says what to write instead.
"""

import re
from ipaddress import ip_network
from pathlib import Path

from django.conf import settings
from django.core import checks

from relieve_app.pool.framing import MAX_FRAME

SOCKET_NAME = Path("var") / "relieve.sock"

DEFAULTS = {
    # Who receives the contact mail, and how many posts one client may send ("" for no limit).
    "CONTACT_RECIPIENT": "me@example.com",
    # The queue of the relieve backend the contact mail goes on. Left unset, and "mail" not among the
    # backend's QUEUES, the mail goes on its "default" queue (or its only one).
    "CONTACT_MAIL_QUEUE": "mail",
    # Who hears, by a mail from the master itself, of a message that ended failed (None: the
    # CONTACT_RECIPIENT; "": nobody).
    "RELIEVE_FAILURE_NOTIFY": None,
    # True lets DEBUG=False run with a mail backend that delivers nothing (console, file, memory).
    "RELIEVE_ALLOW_DEV_MAIL": False,
    "CONTACT_RATE_LIMIT": "5/m",
    # Addresses (or networks) of reverse proxies whose X-Forwarded-For names the real client.
    "CONTACT_TRUSTED_PROXIES": [],
    # The master's socket: relative paths are taken from BASE_DIR (or the working directory).
    "RELIEVE_SOCKET": str(SOCKET_NAME),
    "RELIEVE_WORKERS": 4,
    "RELIEVE_MAX_ATTEMPTS": 5,
    # The largest arguments enqueue() accepts, in bytes of JSON: a job crosses to its child in one
    # frame, so this stays under the frame's cap with room for the rest of the job.
    "RELIEVE_MAX_ARGS_BYTES": 512 * 1024,
    "RELIEVE_ACK_TIMEOUT": 0.5,
    "RELIEVE_RETRY_DELAY": 5.0,
    # The longest wait between two attempts, however many came before.
    "RELIEVE_MAX_RETRY_DELAY": 600.0,
    # Periodic tasks: name -> {"task", "cron" | "every", ...} (tasks/schedule/, README "Periodic tasks").
    "RELIEVE_SCHEDULE": {},
    "RELIEVE_SWEEP_INTERVAL": 30.0,
    # Ready ids a master keeps in memory per queue; a deeper backlog waits in the table, read again
    # as the master works through what it holds (tasks/master/queueing.py).
    "RELIEVE_MAX_HELD": 10_000,
    "RELIEVE_CALL_TIMEOUT": 60.0,
    "RELIEVE_GRACE": 10.0,
    # A graceful stop leaves each child in a task running, to finish it and record its end itself
    # (tasks/failsafe.py): a restart cuts no task short. False: the stop waits RELIEVE_GRACE, then kills.
    "RELIEVE_FAILSAFE": True,
    "RELIEVE_CLIENT_TIMEOUT": 10.0,
    "RELIEVE_MAX_CALLS": 1000,
    "RELIEVE_MAX_MEMORY_MB": 256,
    "RELIEVE_USAGE_INTERVAL": 30.0,
    # A Markdown body that takes longer to render goes out as text only.
    "RELIEVE_RENDER_TIMEOUT": 0.5,
    "RELIEVE_TASK": "relieve_app.tasks.runner:Runner",
    # The master forks its children from a zygote that has Django and the task's module loaded;
    # False starts each child as a fresh interpreter, as before.
    "RELIEVE_PRELOAD": True,
    # ... and makes what the zygote loaded immortal (CPython 3.12 and 3.13), so that the children
    # keep sharing its pages; False if something loaded before the fork must be freed (its memory,
    # its finalizer) once nothing refers to it.
    "RELIEVE_PRELOAD_IMMORTAL": True,
    # Several masters on one PostgreSQL: the name a master registers under ("": the host name), how
    # often it renews its lease, and how long a silent master's lease lasts before its work is taken.
    "RELIEVE_HOST": "",
    "RELIEVE_HEARTBEAT": 5.0,
    "RELIEVE_LEASE": 30.0,
    # Children per queue, like "mail=4,default=2"; a queue not named gets RELIEVE_WORKERS. A range,
    # "mail=4-16", grows the queue while its tasks wait (tasks/master/scaling.py).
    "RELIEVE_QUEUES": "",
    # Seconds a child a queue grew by stays idle before it is stopped, down to the range's least.
    "RELIEVE_SCALE_DOWN_AFTER": 30.0,
    # PostgreSQL: False lets the master's claims and outcomes commit without waiting for the disk.
    "RELIEVE_DURABLE_WRITES": False,
    # How long `prunetasks` keeps finished task results, like "7d" or "12h".
    "RELIEVE_KEEP_RESULTS": "7d",
    # Back-pressure: {queue: most READY tasks}; past it enqueue() raises relieve_app.control.QueueFull.
    "RELIEVE_MAX_READY": {},
    # The Bearer token of the metrics/ view; None leaves the view out (404).
    "RELIEVE_METRICS_TOKEN": None,
}

# What each setting must be: (kind, smallest value allowed). CONTACT_RATE_LIMIT and CONTACT_RECIPIENT
# have checks of their own (checks.py).
RULES = {
    "RELIEVE_ALLOW_DEV_MAIL": ("bool", None),
    "CONTACT_TRUSTED_PROXIES": ("networks", None),
    "RELIEVE_SOCKET": ("path", None),
    "RELIEVE_WORKERS": ("int", 1),
    "RELIEVE_MAX_ATTEMPTS": ("int", 1),
    "RELIEVE_MAX_ARGS_BYTES": ("args_bytes", 1),
    "RELIEVE_ACK_TIMEOUT": ("seconds", 0.01),
    "RELIEVE_RETRY_DELAY": ("seconds", 0),
    "RELIEVE_MAX_RETRY_DELAY": ("seconds", 0),
    "RELIEVE_SWEEP_INTERVAL": ("seconds", 0.1),
    "RELIEVE_MAX_HELD": ("int", 1),
    "RELIEVE_CALL_TIMEOUT": ("seconds", 0.1),
    "RELIEVE_GRACE": ("seconds", 0),
    "RELIEVE_FAILSAFE": ("bool", None),
    "RELIEVE_CLIENT_TIMEOUT": ("seconds", 0.1),
    "RELIEVE_MAX_CALLS": ("int", 0),
    "RELIEVE_MAX_MEMORY_MB": ("int", 0),
    "RELIEVE_USAGE_INTERVAL": ("seconds", 0.1),
    "RELIEVE_SCALE_DOWN_AFTER": ("seconds", 0.1),
    "RELIEVE_RENDER_TIMEOUT": ("seconds", 0.01),
    "RELIEVE_TASK": ("script", None),
    "RELIEVE_PRELOAD": ("bool", None),
    "RELIEVE_PRELOAD_IMMORTAL": ("bool", None),
    "RELIEVE_HEARTBEAT": ("seconds", 0.1),
    "RELIEVE_LEASE": ("seconds", 0.2),
    "RELIEVE_DURABLE_WRITES": ("bool", None),
    "RELIEVE_MAX_READY": ("bounds", 1),
    "RELIEVE_METRICS_TOKEN": ("token", None),
}

MAX_SOCKET_PATH = 107  # sun_path is 108 bytes on Linux, one for the NUL
MAX_ARGS_BYTES = (
    MAX_FRAME - 64 * 1024
)  # the rest of a job (path, times, worker names) fits in the 64 KiB left
SCRIPT = re.compile(r"[A-Za-z_][\w.]*(:[A-Za-z_]\w*)?", re.ASCII)


class AppSettings:
    """``app_settings.RELIEVE_WORKERS``: the project's value if it sets one, else the default."""

    def __getattr__(self, name):
        if name not in DEFAULTS:
            raise AttributeError(f"{name} is not a setting of relieve_app")
        value = getattr(settings, name, DEFAULTS[name])
        if name == "RELIEVE_SOCKET":
            return str(socket_path(value))
        if name == "RELIEVE_FAILURE_NOTIFY" and value is None:
            return self.CONTACT_RECIPIENT
        return value

    def __dir__(self):
        return list(DEFAULTS)


app_settings = AppSettings()


def set_by_project(name):
    """Whether the project's settings name the setting, rather than leave the app's default."""
    return hasattr(settings, name)


def socket_path(value):
    """A relative socket path lives under the project's BASE_DIR, so web and master agree on it."""
    path = Path(value)
    if path.is_absolute():
        return path
    base = getattr(settings, "BASE_DIR", None)
    return (Path(base) if base else Path.cwd()) / path


def check_settings(app_configs, **kwargs):
    """One Error per bad setting, naming it, its value and what to write instead."""
    errors = []
    for name in RULES:
        value = getattr(settings, name, DEFAULTS[name])
        found = problem(name, value)
        if found:
            errors.append(
                checks.Error(f"{name} = {value!r}: {found}", obj=f"settings.{name}", id="relieve_app.E010")
            )
    found = None if errors else lease_problem(app_settings.RELIEVE_HEARTBEAT, app_settings.RELIEVE_LEASE)
    if found:
        errors.append(checks.Error(found, obj="settings.RELIEVE_LEASE", id="relieve_app.E010"))
    return errors


def problem(name, value):
    """What is wrong with ``value`` for the setting ``name`` by its rule, or None."""
    kind, minimum = RULES[name]
    return CHECKS[kind](value, minimum)


def lease_problem(heartbeat, lease):
    """One late heartbeat must not lose a master its lease."""
    if lease < 2 * heartbeat:
        return (
            f"RELIEVE_LEASE ({lease:g}s) must be at least twice RELIEVE_HEARTBEAT ({heartbeat:g}s): "
            "one late beat must not lose the lease."
        )
    return None


def _number(value, minimum, kinds, word):
    if isinstance(value, bool) or not isinstance(value, kinds):
        return f"must be {word}, e.g. {minimum or 1}."
    if value < minimum:
        return f"must be at least {minimum}."
    return None


def _args_bytes(value, minimum):
    problem = _number(value, minimum, int, "a whole number of bytes")
    if problem is None and value > MAX_ARGS_BYTES:
        return f"must be at most {MAX_ARGS_BYTES}: a job crosses to its child in one {MAX_FRAME}-byte frame."
    return problem


def _bool(value, minimum):
    if not isinstance(value, bool):
        return "must be True or False."
    return None


def _networks(value, minimum):
    if isinstance(value, str) or not isinstance(value, list | tuple):
        return "must be a list of addresses or networks, e.g. ['127.0.0.1', '10.0.0.0/8']."
    for item in value:
        try:
            ip_network(item, strict=False)
        except (TypeError, ValueError):
            return f"{item!r} is not an IP address or network, e.g. '10.0.0.0/8'."
    return None


def _path(value, minimum):
    if not isinstance(value, str | Path) or not str(value):
        return "must be a file path, e.g. '/run/relieve/relieve.sock'."
    if len(str(socket_path(value)).encode()) > MAX_SOCKET_PATH:
        return f"is longer than {MAX_SOCKET_PATH} bytes once made absolute, too long for a Unix socket."
    return None


def _script(value, minimum):
    if not isinstance(value, str) or not SCRIPT.fullmatch(value):
        return "must name a module and a class, e.g. 'relieve_app.tasks.runner:Runner'."
    return None


def _bounds(value, minimum):
    if not isinstance(value, dict):
        return "must be a dict of queue names and numbers, e.g. {'mail': 10000}."
    for queue, bound in value.items():
        if (
            not isinstance(queue, str)
            or isinstance(bound, bool)
            or not isinstance(bound, int)
            or bound < minimum
        ):
            return f"{queue!r}: {bound!r} must be a queue name and a whole number of at least {minimum}."
    return None


def _token(value, minimum):
    if value is not None and (not isinstance(value, str) or len(value) < 16):
        return "must be None (no metrics view) or a secret of at least 16 characters."
    return None


CHECKS = {
    "int": lambda value, minimum: _number(value, minimum, int, "a whole number"),
    "seconds": lambda value, minimum: _number(value, minimum, int | float, "a number of seconds"),
    "args_bytes": _args_bytes,
    "bool": _bool,
    "networks": _networks,
    "path": _path,
    "script": _script,
    "bounds": _bounds,
    "token": _token,
}


BACKEND = "relieve_app.backend.RelieveBackend"
ADDED_ALIAS = "relieve"  # the TASKS entry the app adds to a project that names no relieve backend


def backend_alias():
    """The TASKS alias that is relieve's backend: the project's own, else the one the app added."""
    for alias, params in settings.TASKS.items():
        if params.get("BACKEND") == BACKEND:
            return alias
    return ADDED_ALIAS


def add_backend_if_missing():
    """A project that only installs the app still needs the contact mail's backend: add it, with the
    queues the app uses, beside whatever TASKS the project has (Django's immediate backend by default)."""
    if any(params.get("BACKEND") == BACKEND for params in settings.TASKS.values()):
        return
    settings.TASKS = {**settings.TASKS, ADDED_ALIAS: {"BACKEND": BACKEND, "QUEUES": ["default", "mail"]}}


def backend_queues():
    """The queues relieve's backend lists, as runrelieve serves them: none listed means "default"."""
    return list(settings.TASKS.get(backend_alias(), {}).get("QUEUES") or ["default"])


def contact_mail_queue():
    """The queue the contact mail goes on: CONTACT_MAIL_QUEUE when the backend has it; else, as a
    project's own TASKS may list no "mail", the backend's "default" queue, or its first.

    A CONTACT_MAIL_QUEUE the project sets to a queue its backend lacks is a system check's error
    (relieve_app.E004); the mail task meanwhile takes a queue that exists, so nothing fails at import.
    """
    queues = backend_queues()
    if app_settings.CONTACT_MAIL_QUEUE in queues:
        return app_settings.CONTACT_MAIL_QUEUE
    return "default" if "default" in queues else queues[0]
