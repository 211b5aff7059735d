"""The project's settings with the task backend bench/tasks.py measures: BENCH_BACKEND=relieve or db."""

import os

from project.settings import *  # noqa: F403
from project.settings import INSTALLED_APPS

# The contact mail task is declared on "mail"; BENCH_QUEUES=mail serves it alone (as bench/peers.py does).
QUEUES = os.environ.get("BENCH_QUEUES", "default,mail").split(",")

if os.environ.get("BENCH_BACKEND") == "db":
    INSTALLED_APPS = [*INSTALLED_APPS, "django_tasks_db"]
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": QUEUES}}
else:
    TASKS = {"default": {"BACKEND": "relieve_app.backend.RelieveBackend", "QUEUES": QUEUES}}
