from django.apps import AppConfig


class RelieveAppConfig(AppConfig):
    name = "relieve_app"
    verbose_name = "relieve"
    default_auto_field = "django.db.models.BigAutoField"
