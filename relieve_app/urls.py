from django.urls import path
from django.views.generic import RedirectView

from relieve_app import views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="contact"), name="home"),
    path("contact/", views.contact, name="contact"),
]
