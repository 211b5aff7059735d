"""The admin under /admin/, the contact page and its friends at the root."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("relieve_app.urls")),
]
