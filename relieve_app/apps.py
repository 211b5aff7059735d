from django.apps import AppConfig
from django.core import checks

from relieve_app import checks as relieve_checks
from relieve_app.conf import add_backend_if_missing
from relieve_app.folders import make_default_folders
from relieve_app.tasks.schedule.checks import check_schedule


class RelieveAppConfig(AppConfig):
    name = "relieve_app"
    verbose_name = "relieve"
    default_auto_field = "django.db.models.BigAutoField"

    def __init__(self, app_name, app_module):
        super().__init__(app_name, app_module)
        # Before any app's ready(): the admin's autodiscovery already imports the mail task, whose
        # backend must then be in TASKS.
        add_backend_if_missing()

    def ready(self):
        # Nothing is refused here: migrate, collectstatic and check must run whatever the mail settings.
        # The checks stop what runs them; runrelieve and the contact view refuse on their own.
        make_default_folders()
        for check in relieve_checks.STARTUP_CHECKS:
            checks.register(check)
        checks.register(relieve_checks.check_rate_limit_cache, deploy=True)
        checks.register(check_schedule)
        # The contact page follows its mail task through the engine's public hooks.
        from relieve_app.contact import outcomes

        outcomes.register()
        # PostgreSQL: every READY row the ORM creates tells the masters, on commit.
        from relieve_app.tasks import notifying

        notifying.connect()
