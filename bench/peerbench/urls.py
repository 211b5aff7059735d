"""The project's own URLs, plus the peers' contact view."""

from django.urls import include, path

from bench.peerbench import views

urlpatterns = [
    path("peer/contact/", views.contact, name="peer-contact"),
    path("", include("project.urls")),
]
