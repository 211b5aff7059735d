"""The admin under /admin/, the contact page under /contact/, and the root sent to it."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("contact/", include("relieve_app.urls")),
    path("", RedirectView.as_view(pattern_name="relieve_app:contact"), name="home"),
]
