from django.apps import AppConfig
from django.core import checks

from relieve_app.checks import check_contact_rate_limit, check_rate_limit_cache
from relieve_app.conf import app_settings, check_settings, refuse_bad_settings
from relieve_app.ratelimit import parse_rate


class RelieveAppConfig(AppConfig):
    name = "relieve_app"
    verbose_name = "relieve"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Every process stops here on a bad setting, gunicorn included, which runs no system checks:
        # better than a server whose every POST fails.
        parse_rate(app_settings.CONTACT_RATE_LIMIT)
        refuse_bad_settings()
        checks.register(check_settings)
        checks.register(check_contact_rate_limit)
        checks.register(check_rate_limit_cache, deploy=True)
