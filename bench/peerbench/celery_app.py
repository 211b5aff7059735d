"""The Celery application: settings from Django's (CELERY_ prefix), one task that calls `deliver`."""

import os

import django
from celery import Celery
from django.apps import apps

if not apps.ready:  # the worker imports this module first; the web process has Django set up already
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.peerbench.settings")
    django.setup()

from bench.peerbench.jobs import deliver  # after django.setup()

app = Celery("peerbench")
app.config_from_object("django.conf:settings", namespace="CELERY")


@app.task(name="peerbench.deliver")
def deliver_task(outcome_id):
    deliver(outcome_id)


def enqueue(outcome):
    deliver_task.delay(outcome.pk)
