"""An app of a project that follows its task through the engine's hooks, as
docs/howto/outcome-hook.md shows."""

from django.apps import AppConfig


class HookedConfig(AppConfig):
    name = "tests.tasks_fixtures"
    label = "hooked"

    def ready(self):
        from tests.tasks_fixtures import hooked

        hooked.register()
