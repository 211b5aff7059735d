"""The contact page: validate, store, hand to the master, answer 202 without waiting for SMTP."""

import json
from functools import partial

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import transaction
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from relieve_app import client
from relieve_app.forms import ContactForm
from relieve_app.models import MailOutcome

JSON = "application/json"
HTML = "text/html"


class BadBody(ValueError):
    """A JSON request body that cannot be read as the form's fields."""


@require_http_methods(["GET", "HEAD", "POST"])
def contact(request):
    if request.method != "POST":
        return render(request, "relieve_app/contact.html", {"form": ContactForm()})
    as_json = _wants_json(request)
    try:
        data = _form_data(request)
    except BadBody as exc:
        if as_json:
            return JsonResponse({"errors": {"__all__": [str(exc)]}}, status=400)
        context = {"form": ContactForm(), "request_error": str(exc)}
        return render(request, "relieve_app/contact.html", context, status=400)

    form = ContactForm(data)
    if not form.is_valid():
        if as_json:
            errors = {field: list(messages) for field, messages in form.errors.items()}
            return JsonResponse({"errors": errors}, status=400)
        return render(request, "relieve_app/contact.html", {"form": form}, status=400)

    outcome = enqueue(form.cleaned_data)
    if as_json:
        return JsonResponse({"id": outcome.pk, "status": outcome.status}, status=202)
    return render(request, "relieve_app/thanks.html", {"outcome": outcome}, status=202)


def enqueue(cleaned_data):
    """Save the message as queued; only once it is committed may the master be told about it."""
    with transaction.atomic():
        outcome = MailOutcome.objects.create(
            emitter=cleaned_data["emitter"],
            recipient=settings.CONTACT_RECIPIENT,
            subject=cleaned_data["subject"],
            body=cleaned_data["body"],
        )
        transaction.on_commit(partial(client.submit, outcome.pk))
    return outcome


def _wants_json(request):
    """JSON when the Accept header prefers it; for a JSON body, also when it accepts anything."""
    offered = [JSON, HTML] if request.content_type == JSON else [HTML, JSON]
    return request.get_preferred_type(offered) == JSON


def _form_data(request):
    if request.content_type != JSON:
        return request.POST
    try:
        data = json.loads(request.body)
    except RequestDataTooBig:
        raise BadBody(
            f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."
        ) from None
    except (ValueError, RecursionError) as exc:
        raise BadBody(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadBody("The request body must be a JSON object with emitter, subject and body.")
    wrong = [
        name
        for name in ContactForm.base_fields
        if data.get(name) is not None and not isinstance(data[name], str)
    ]
    if wrong:
        raise BadBody(f"These fields must be strings: {', '.join(wrong)}.")
    return {name: data[name] for name in ContactForm.base_fields if data.get(name) is not None}
