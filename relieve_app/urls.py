"""The contact page and its friends, wherever the project includes them, e.g. under "contact/".

Nothing here claims the site's root; every other URL below the prefix is a 404 in the client's
language (JSON or HTML).
"""

from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt

from relieve_app.contact import answers, views
from relieve_app.monitor.metrics_view import metrics_view

app_name = "relieve_app"

urlpatterns = [
    path("", views.contact, name="contact"),
    path("thanks/<str:reference>/", views.thanks, name="thanks"),
    path("status/<str:reference>/", views.status, name="status"),
    path("metrics/", metrics_view, name="metrics"),  # Prometheus; 404 unless RELIEVE_METRICS_TOKEN is set
    re_path(r"^", csrf_exempt(answers.not_found)),  # a POST anywhere here is a 404 too, not a 403
]
