"""Django settings, read from the environment (and an optional `.env` at the repository root).

Every value has a default that runs the project on a laptop: SQLite in `var/`, mail printed to the
console, DEBUG on. Production sets SECRET_KEY, DEBUG=false, ALLOWED_HOSTS, DATABASE_URL, EMAIL_URL.
"""

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
# The default home of the SQLite database and the socket. Importing settings writes nothing: var/ is
# made at start only when a default in use lives there (relieve_app.folders, endpoint.py).
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=True)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. With DEBUG=false, set SECRET_KEY in the environment or in .env "
            "to a long random string, e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`."
        )
    SECRET_KEY = "django-insecure-dev-only-key-never-use-in-production"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
# Over HTTPS Django checks a POST's Origin against these: "https://example.com".
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS, as `manage.py check --deploy` asks; docs/howto/production-checklist.md sets each one. Cookies
# are secure once DEBUG is off; redirects and HSTS only when asked, since they need HTTPS in front.
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Behind a proxy that ends TLS: SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https
SECURE_PROXY_SSL_HEADER = tuple(env.list("SECURE_PROXY_SSL_HEADER", default=[])) or None
SILENCED_SYSTEM_CHECKS = env.list("SILENCED_SYSTEM_CHECKS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "relieve_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
ASGI_APPLICATION = "project.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],  # the project's own overrides of the app's templates
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _database(url):
    """Parse DATABASE_URL; SQLite gets WAL, a busy timeout and a file test database."""
    config = env.db_url_config(url)
    options = config.get("OPTIONS", {})
    if isinstance(options.get("server_side_binding"), str):  # ?server_side_binding=true: Django wants a bool
        options["server_side_binding"] = env.parse_value(options["server_side_binding"], bool)
    # A request keeps its process's connection for the next (Django's default, 0, opens one per
    # request): on PostgreSQL a connection starts a server process, which cost more CPU than the
    # contact POST itself (bench/README.md). Checked before reuse, so one the server dropped is
    # replaced instead of failing the request. ?conn_max_age=0 in DATABASE_URL turns it off.
    config.setdefault("CONN_MAX_AGE", 60)  # seconds
    config["CONN_HEALTH_CHECKS"] = env.parse_value(str(config.get("CONN_HEALTH_CHECKS", True)), bool)
    if config["ENGINE"] != "django.db.backends.sqlite3":
        return config
    name = config["NAME"]
    if name and name != ":memory:" and not Path(name).is_absolute():
        config["NAME"] = str(BASE_DIR / name)
    # Django's backend, with a request first in line for the write lock (relieve_app/sqlite3/base.py).
    config["ENGINE"] = "relieve_app.sqlite3"
    config["OPTIONS"] = {
        # WAL lets the web process and the relieve master read while the other writes.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        # Take the write lock at BEGIN, so a busy database waits instead of failing mid-transaction.
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        **config.get("OPTIONS", {}),
    }
    # A file, not memory: end-to-end tests run the master as another process on the same database.
    # Beside the database, one per test run.
    folder = Path(config["NAME"]).parent if config["NAME"] not in ("", ":memory:") else VAR_DIR
    config["TEST"] = {"NAME": str(folder / f"test-db-{os.getpid()}.sqlite3")}
    return config


_database_url = env.str("DATABASE_URL", default="") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
DATABASES = {"default": _database(_database_url)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=VAR_DIR / "static")

# A body is at most 20,000 characters; percent-encoded 4-byte UTF-8 that is 240,000 bytes. The contact
# view refuses any larger request (413) before reading it.
DATA_UPLOAD_MAX_MEMORY_SIZE = 256 * 1024


def _mailer(url):
    """Turn EMAIL_URL into Django's default mailer: consolemail://, filemail:///var/mail (under the
    repository; filemail:////tmp/mail for an absolute path), smtp://host:25, smtp+tls://user:pw@host:587."""
    config = env.email_url_config(url)
    backend = config["EMAIL_BACKEND"]
    if backend == "django.core.mail.backends.filebased.EmailBackend":
        options = {"file_path": str(BASE_DIR / (config["EMAIL_FILE_PATH"] or "var/mail"))}
    elif backend == "django.core.mail.backends.smtp.EmailBackend":
        options = {
            "host": config["EMAIL_HOST"] or "localhost",
            "port": config["EMAIL_PORT"],
            "username": config["EMAIL_HOST_USER"],
            "password": config["EMAIL_HOST_PASSWORD"],
            "use_tls": config.get("EMAIL_USE_TLS", False),
            "use_ssl": config.get("EMAIL_USE_SSL", False),
            # A stuck SMTP server must not hold a worker forever.
            "timeout": env.float("EMAIL_TIMEOUT", default=10.0),
        }
    else:
        options = {}
    return {
        "BACKEND": backend,
        "OPTIONS": {key: value for key, value in options.items() if value is not None},
    }


MAILERS = {"default": _mailer(env.str("EMAIL_URL", default="") or "consolemail://")}
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="relieve <noreply@localhost>")
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
# The relieve app has a default for each of its settings (relieve_app/conf.py, docs/reference/settings.md):
# this project sets only those the environment names. RELIEVE_SOCKET may be relative to BASE_DIR.
RELIEVE_FROM_ENV = {
    "CONTACT_RECIPIENT": env.str,
    "RELIEVE_FAILURE_NOTIFY": env.str,  # empty: nobody hears of failed messages
    "CONTACT_RATE_LIMIT": env.str,  # empty: no limit
    "CONTACT_TRUSTED_PROXIES": env.list,
    "RELIEVE_SOCKET": env.str,
    "RELIEVE_WORKERS": env.int,
    "RELIEVE_MAX_ATTEMPTS": env.int,
    "RELIEVE_MAX_ARGS_BYTES": env.int,
    "RELIEVE_ACK_TIMEOUT": env.float,
    "RELIEVE_RETRY_DELAY": env.float,
    "RELIEVE_MAX_RETRY_DELAY": env.float,
    "RELIEVE_SWEEP_INTERVAL": env.float,
    "RELIEVE_MAX_HELD": env.int,
    "RELIEVE_CALL_TIMEOUT": env.float,
    "RELIEVE_GRACE": env.float,
    "RELIEVE_FAILSAFE": env.bool,
    "RELIEVE_CLIENT_TIMEOUT": env.float,
    "RELIEVE_MAX_CALLS": env.int,
    "RELIEVE_MAX_MEMORY_MB": env.int,
    "RELIEVE_USAGE_INTERVAL": env.float,
    "RELIEVE_SCALE_DOWN_AFTER": env.float,
    "RELIEVE_RENDER_TIMEOUT": env.float,
    "RELIEVE_TASK": env.str,
    # With DEBUG off, a backend that delivers nothing (console, file, memory, dummy) stops every process
    # at start, unless this says it is meant; runrelieve then warns at every start.
    "RELIEVE_ALLOW_DEV_MAIL": env.bool,
    # Several masters may share one PostgreSQL. Each registers under RELIEVE_HOST (default: the machine's
    # host name) and renews its lease every RELIEVE_HEARTBEAT seconds; one silent for RELIEVE_LEASE
    # seconds is gone, and what it held is taken over.
    "RELIEVE_HOST": env.str,
    "RELIEVE_HEARTBEAT": env.float,
    "RELIEVE_LEASE": env.float,
    # Children per queue, like "mail=4,default=2" (runrelieve --queue); a queue not named gets
    # RELIEVE_WORKERS. A range, "mail=4-16", grows the queue while its tasks wait.
    "RELIEVE_QUEUES": env.str,
    # PostgreSQL: the master's claims and outcomes wait for the disk at every commit. Off (the default),
    # a crash of the database server may forget their last fraction of a second: those tasks run again.
    "RELIEVE_DURABLE_WRITES": env.bool,
    # False starts every child of the master as a fresh interpreter instead of forking it warm.
    "RELIEVE_PRELOAD": env.bool,
    # False leaves what the zygote loaded mortal: freed once nothing refers to it, at the cost of
    # each child's own copy of the pages it counts references on (see docs/how-it-works.md).
    "RELIEVE_PRELOAD_IMMORTAL": env.bool,
    # Finished task results older than this are removed by `manage.py prunetasks` (e.g. "7d", "12h").
    "RELIEVE_KEEP_RESULTS": env.str,
    # Periodic tasks, as JSON: {"prune": {"task": "relieve_app.tasks.prune.prune_results", "every": "1h"}}
    "RELIEVE_SCHEDULE": env.json,
    # Back-pressure, like "mail=10000,default=500": enqueue() refuses past that many READY tasks.
    "RELIEVE_MAX_READY": lambda name: {queue: int(bound) for queue, bound in env.dict(name).items()},
    # The Bearer token the metrics/ view asks for; unset, the view answers 404.
    "RELIEVE_METRICS_TOKEN": env.str,
}
globals().update({name: read(name) for name, read in RELIEVE_FROM_ENV.items() if name in os.environ})

# django.tasks: every @task runs in the relieve master's children; the contact mail on "mail".
TASKS = {
    "default": {
        "BACKEND": "relieve_app.backend.RelieveBackend",
        "QUEUES": env.list("TASK_QUEUES", default=["default", "mail"]),
    }
}

# The rate limit counts in the default cache. The local-memory default is one per process: with several
# web processes, use a shared cache for one global count: redis://host:6379/0 (Django's RedisCache needs
# the `redis` package) or filecache:///var/tmp/relieve (no extra package; its increments are not atomic).
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}

log_level = env.str("RELIEVE_LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "loggers": {
        "relieve_app": {"handlers": ["console"], "level": log_level},
        # Django's "Task id=… state=…" lines, which the master logs, in the same timestamped form
        # instead of through Django's bare DEBUG console. Quietened with the master's own lines: at
        # two a task, a busy master spends a share of its CPU writing them.
        "django.tasks": {"handlers": ["console"], "level": log_level, "propagate": False},
    },
}
