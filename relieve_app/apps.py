from django.apps import AppConfig
from django.core import checks

from relieve_app.checks import check_contact_rate_limit, check_rate_limit_cache


class RelieveAppConfig(AppConfig):
    name = "relieve_app"
    verbose_name = "relieve"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        checks.register(check_contact_rate_limit)
        checks.register(check_rate_limit_cache, deploy=True)
