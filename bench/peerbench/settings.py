"""The project's settings plus what one system under test needs (PEERBENCH_SYSTEM names it)."""

import os

from bench.peerbench.systems import SYSTEMS
from project.settings import *  # noqa: F403
from project.settings import INSTALLED_APPS

SYSTEM = SYSTEMS[os.environ.get("PEERBENCH_SYSTEM", "relieve")]
REDIS_URL = os.environ.get("PEERBENCH_REDIS", "redis://127.0.0.1:6379/7")

ROOT_URLCONF = "bench.peerbench.urls"
INSTALLED_APPS = [*INSTALLED_APPS, *SYSTEM.apps]
PEERBENCH_ENQUEUE = SYSTEM.enqueue

globals().update(SYSTEM.settings(REDIS_URL))

# On SQLite the peers run Django's own engine, as their users would; relieve_app.sqlite3 (requests
# first in line for the write lock, the master yielding) is part of what is measured of ours.
if SYSTEM.peer and DATABASES["default"]["ENGINE"] == "relieve_app.sqlite3":  # noqa: F405
    DATABASES["default"]["ENGINE"] = "django.db.backends.sqlite3"  # noqa: F405

# bench/peers.py --request-clock: where each POST's time goes inside Django (request_clock.py).
if os.environ.get("PEERBENCH_REQUEST_CLOCK"):
    MIDDLEWARE = ["bench.peerbench.request_clock.RequestClock", *MIDDLEWARE]  # noqa: F405
