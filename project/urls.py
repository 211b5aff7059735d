"""The admin under /admin/, the contact page under /contact/, and the root sent to it.

This project titles its own admin; the app only adds its section (its models and the live pool).
"""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView


class FaviconView(RedirectView):
    """The icon's static URL is resolved per request: a hashed one exists only after collectstatic."""

    def get_redirect_url(self, *args, **kwargs):
        return static("relieve_app/favicon.svg")


admin.site.site_header = "relieve administration"
admin.site.site_title = "relieve"
admin.site.index_title = "Contact mail and its pool"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("contact/", include("relieve_app.urls")),
    path("", RedirectView.as_view(pattern_name="relieve_app:contact"), name="home"),
    # Browsers ask every site for /favicon.ico: an icon, not a 404 in every page's log.
    path("favicon.ico", FaviconView.as_view(), name="favicon"),
]
