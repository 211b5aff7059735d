"""The project's settings with one more app, whose ready() registers a hook (hooked_app.py)."""

from project.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.tasks_fixtures.hooked_app.HookedConfig"]  # noqa: F405
