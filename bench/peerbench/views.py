"""The contact view the peers share: the project's form and MailOutcome row, then the peer's hand-over.

It does what the project's view does on a valid POST, minus the hand-over to the relieve master:
on commit it calls the system's PEERBENCH_ENQUEUE with the saved row.
"""

from functools import cache, partial

from django.conf import settings
from django.db import transaction
from django.http import JsonResponse
from django.utils.module_loading import import_string
from django.views.decorators.http import require_POST

from relieve_app.contact.forms import ContactForm
from relieve_app.models import MailOutcome


@cache
def _enqueue():
    return import_string(settings.PEERBENCH_ENQUEUE)


@require_POST
def contact(request):
    form = ContactForm(request.POST)
    if not form.is_valid():
        return JsonResponse(
            {"errors": {field: list(errors) for field, errors in form.errors.items()}}, status=400
        )
    with transaction.atomic():
        outcome = MailOutcome.objects.create(
            emitter=form.cleaned_data["emitter"],
            recipient=settings.CONTACT_RECIPIENT,
            subject=form.cleaned_data["subject"],
            body=form.cleaned_data["body"],
        )
        transaction.on_commit(partial(_enqueue(), outcome))
    return JsonResponse({"id": outcome.pk, "status": outcome.status}, status=202)
