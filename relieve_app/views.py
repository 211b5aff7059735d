"""The contact page: validate, store, hand to the master, answer 202 without waiting for SMTP.

Whatever a client sends, the answer is 202, 400, 413 (body over DATA_UPLOAD_MAX_MEMORY_SIZE), 429
(over CONTACT_RATE_LIMIT, with Retry-After) or 503 (database unreachable or locked, with Retry-After),
in HTML or JSON, and a row exists only after a 202.
"""

import logging
from functools import wraps

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods

from relieve_app import payload, ratelimit
from relieve_app.forms import HONEYPOT, ContactForm
from relieve_app.mailtask import send_contact_mail
from relieve_app.models import MailOutcome
from relieve_app.payload import JSON, BadBody

logger = logging.getLogger(__name__)

HTML = "text/html"
TEMPLATE = "relieve_app/contact.html"
# Seconds a visitor is asked to wait when the database cannot take the message.
UNAVAILABLE_RETRY_AFTER = 30


def refuse_oversized(view):
    """Answers 413 to a body too large for the contact form before anything reads it."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            payload.check_size(request)
        except BadBody as exc:
            return _refuse(request, _wants_json(request), str(exc), status=exc.status)
        return view(request, *args, **kwargs)

    return wrapper


# CSRF is checked by csrf_protect below, not by the middleware: the middleware reads a form body
# before any view code runs, so an oversized one would get Django's bare 400 instead of our 413.
@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
@refuse_oversized
@csrf_protect
def contact(request):
    if request.method != "POST":
        return render(request, TEMPLATE, {"form": ContactForm()})
    as_json = _wants_json(request)
    try:
        data = payload.form_data(request)
    except BadBody as exc:
        return _refuse(request, as_json, str(exc), status=exc.status)

    # Counted once the body is read, so a visitor told to wait gets the form back with their message.
    retry_after = ratelimit.contact_retry_after(request)
    if retry_after is not None:
        message = f"You have sent too many messages. Please wait {retry_after} seconds, then send again."
        response = _refuse(request, as_json, message, status=429, initial=data)
        response["Retry-After"] = str(retry_after)
        return response

    form = ContactForm(data)
    if not form.is_valid():
        if as_json:
            errors = {field: list(messages) for field, messages in form.errors.items()}
            return JsonResponse({"errors": errors}, status=400)
        return render(request, TEMPLATE, {"form": form}, status=400)
    if form.is_spam():
        return _pretend_accepted(request, as_json, form.cleaned_data)
    try:
        outcome = enqueue(form.cleaned_data)
    except (OperationalError, InterfaceError) as exc:  # an outage or a held lock, not a bug: no 500
        logger.warning("Contact message refused with 503: the database is unavailable (%s).", exc)
        return _unavailable(request, as_json, data)
    return _accepted(request, as_json, outcome)


def enqueue(cleaned_data):
    """Save the message and enqueue its mail task in one transaction; the master hears of it on commit."""
    job = {
        "emitter": cleaned_data["emitter"],
        "recipient": settings.CONTACT_RECIPIENT,
        "subject": cleaned_data["subject"],
        "body": cleaned_data["body"],
    }
    with transaction.atomic():
        result = send_contact_mail.enqueue(job)
        return MailOutcome.objects.create(**job, task_result_id=int(result.id))


def _accepted(request, as_json, outcome):
    if as_json:
        return JsonResponse({"id": outcome.pk, "status": outcome.status}, status=202)
    return render(request, "relieve_app/thanks.html", {"outcome": outcome}, status=202)


def _pretend_accepted(request, as_json, cleaned_data):
    """The honeypot was filled: answer like a success, so a bot learns nothing, but store and send nothing.

    The unsaved outcome has no id: JSON says `"id": null`, which no real message has.
    """
    logger.info(
        "Dropped a contact message from %s: the hidden %r field was filled.",
        request.META.get("REMOTE_ADDR", "?"),
        HONEYPOT,
    )
    fields = {name: cleaned_data[name] for name in ("emitter", "subject", "body")}
    return _accepted(request, as_json, MailOutcome(recipient=settings.CONTACT_RECIPIENT, **fields))


def _unavailable(request, as_json, data):
    """Not taken: the visitor keeps the message (the form is filled again) and sends it later."""
    message = (
        "Your message could not be taken just now and was not sent. "
        f"Please send it again in {UNAVAILABLE_RETRY_AFTER} seconds."
    )
    response = _refuse(request, as_json, message, status=503, initial=data)
    response["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER)
    return response


def _refuse(request, as_json, message, status, initial=None):
    if as_json:
        return JsonResponse({"errors": {"__all__": [message]}}, status=status)
    context = {"form": ContactForm(initial=initial), "request_error": message}
    return render(request, TEMPLATE, context, status=status)


def _wants_json(request):
    """JSON when the Accept header prefers it; for a JSON body, also when it accepts anything."""
    offered = [JSON, HTML] if request.content_type == JSON else [HTML, JSON]
    return request.get_preferred_type(offered) == JSON
