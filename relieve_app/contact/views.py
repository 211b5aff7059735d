"""The contact page: validate, store, hand to the master, answer without waiting for SMTP.

A form post that is accepted is redirected (303) to its thank-you page, so a reload sends nothing
twice; a JSON client gets 202 with the message's reference and status URL. Refusals are 400, 403
(CSRF), 405, 413 (body over DATA_UPLOAD_MAX_MEMORY_SIZE), 429 (over CONTACT_RATE_LIMIT, with
Retry-After) or 503 (database unreachable or locked, or the mail queue full under RELIEVE_MAX_READY,
with Retry-After; or settings the system checks call errors), in HTML or JSON (see answers.py), and a
row exists only after an acceptance.
"""

import functools
import logging

from django.core.signals import setting_changed
from django.db import InterfaceError, OperationalError, transaction
from django.dispatch import receiver
from django.http import HttpResponseRedirect, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from relieve_app.checks import refusal
from relieve_app.conf import app_settings
from relieve_app.contact import answers, payload, progress, ratelimit, references
from relieve_app.contact.answers import wants_json
from relieve_app.contact.forms import HONEYPOT, ContactForm
from relieve_app.contact.mailtask import send_contact_mail
from relieve_app.contact.payload import BadBody
from relieve_app.control import QueueFull
from relieve_app.models import MailOutcome
from relieve_app.tasks import bulk

logger = logging.getLogger(__name__)

TEMPLATE = "relieve_app/contact.html"
# Seconds a visitor is asked to wait when the database cannot take the message.
UNAVAILABLE_RETRY_AFTER = 30
DATABASE_DOWN = (OperationalError, InterfaceError)
CLOSED = "The contact form is closed for now: this site cannot send its messages. Please come back later."


@functools.cache
def closed_because():
    """What the checks find wrong, "" for nothing: worked out once, as settings do not change while a
    site runs (a test that changes them clears it, by ``setting_changed``)."""
    return refusal()


@receiver(setting_changed)
def _settings_changed(**kwargs):
    closed_because.cache_clear()


def refuse_when_misconfigured(view):
    """Settings the system checks call errors (a recipient that is no address, a bad rate limit...):
    gunicorn runs no checks, so the page says it is closed, and the log says what to change."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if problems := closed_because():
            logger.error("The contact page takes no messages until the settings are fixed: %s", problems)
            if wants_json(request):
                return answers.error(CLOSED, 503)
            return render(request, "relieve_app/unavailable.html", {"message": CLOSED}, status=503)
        return view(request, *args, **kwargs)

    return wrapper


def refuse_oversized(view):
    """Answers 413 to a body too large for the contact form before anything reads it."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            payload.check_size(request)
        except BadBody as exc:
            return _refuse(request, wants_json(request), str(exc), status=exc.status)
        return view(request, *args, **kwargs)

    return wrapper


# CSRF is checked by csrf_protect below, not by the middleware: the middleware reads a form body
# before any view code runs, so an oversized one would get Django's bare 400 instead of our 413.
@csrf_exempt
@answers.allow("GET", "HEAD", "POST")
@refuse_when_misconfigured
@refuse_oversized
@answers.csrf_protect
def contact(request):
    if request.method != "POST":
        return _blank_form(request)
    as_json = wants_json(request)
    try:
        data = payload.form_data(request)
    except BadBody as exc:
        return _refuse(request, as_json, str(exc), status=exc.status)

    form = ContactForm(data)
    if not form.is_valid():
        if as_json:
            errors = {field: list(messages) for field, messages in form.errors.items()}
            return JsonResponse({"errors": errors}, status=400)
        return render(request, TEMPLATE, {"form": form}, status=400)

    # Counted once the message would be accepted: fixing a typo costs the visitor nothing, and one
    # told to wait gets the form back with their message.
    retry_after = ratelimit.contact_retry_after(request)
    if retry_after is not None:
        message = f"You have sent too many messages. Please wait {retry_after} seconds, then send again."
        response = _refuse(request, as_json, message, status=429, initial=data)
        response["Retry-After"] = str(retry_after)
        return response

    if form.is_spam():
        return _pretend_accepted(request, as_json)
    try:
        outcome = enqueue(form.cleaned_data)
    except DATABASE_DOWN as exc:  # an outage or a held lock, not a bug: no 500
        logger.warning("Contact message refused with 503: the database is unavailable (%s).", exc)
        ratelimit.contact_give_back(request)  # not taken: it does not count against the visitor
        return _unavailable(request, as_json, data)
    except QueueFull as exc:  # RELIEVE_MAX_READY: too much mail waits already; nothing was stored
        logger.warning("Contact message refused with 503: %s.", exc)
        ratelimit.contact_give_back(request)
        return _unavailable(request, as_json, data, busy=True)
    return _accepted(request, as_json, outcome.reference, outcome.pk, outcome.status)


def enqueue(cleaned_data):
    """Save the message and enqueue its mail task in one transaction; the master hears of it on commit."""
    job = {
        "emitter": cleaned_data["emitter"],
        "recipient": app_settings.CONTACT_RECIPIENT,
        "subject": cleaned_data["subject"],
        "body": cleaned_data["body"],
    }
    with transaction.atomic():
        result = send_contact_mail.enqueue(job)
        return bulk.create(MailOutcome, **job, task_result_id=int(result.id))


@csrf_exempt  # read-only: the middleware's 403 would hide the 405 a POST deserves
@answers.allow("GET", "HEAD")
@never_cache
def thanks(request, reference):
    """The page a form post is redirected to: the message's state now, followed live by outcome.js."""
    try:
        state = _state(reference)
    except DATABASE_DOWN:
        return _state_unavailable(request)
    if state is None:
        return answers.not_found(request, "No message has this reference.")
    context = {"state": state, "status_url": reverse("relieve_app:status", args=[reference])}
    response = render(request, "relieve_app/thanks.html", context)
    response["Referrer-Policy"] = "no-referrer"  # the reference is the key to this page
    return response


@csrf_exempt
@answers.allow("GET", "HEAD")
@never_cache
def status(request, reference):
    """The state of one message in JSON, found by its unguessable reference alone."""
    try:
        state = _state(reference)
    except DATABASE_DOWN:
        return _state_unavailable(request, as_json=True)
    if state is None:
        return answers.error("No message has this reference.", 404)
    return JsonResponse(state)


def _state(reference):
    if references.is_decoy(reference):
        return progress.describe(reference, MailOutcome.Status.QUEUED)
    outcome = MailOutcome.objects.filter(reference=reference).only("reference", "status", "error").first()
    return progress.of(outcome) if outcome else None


def _state_unavailable(request, as_json=False):
    """The database is down: the message is safe, its state unreadable for now; the page's script retries."""
    message = (
        "The state of your message cannot be read just now. "
        f"Please try again in {UNAVAILABLE_RETRY_AFTER} seconds."
    )
    if as_json or wants_json(request):
        response = answers.error(message, 503)
    else:
        response = render(request, "relieve_app/unavailable.html", {"message": message}, status=503)
    response["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER)
    return response


def _blank_form(request):
    """The form; a JSON client gets the CSRF token (and its cookie) to post with instead."""
    if wants_json(request):
        fields = [name for name in ContactForm.base_fields if name != HONEYPOT]
        return JsonResponse({"csrf_token": get_token(request), "fields": fields})
    return render(request, TEMPLATE, {"form": ContactForm()})


def _accepted(request, as_json, reference, pk, status):
    status_url = reverse("relieve_app:status", args=[reference])
    if not as_json:
        response = HttpResponseRedirect(reverse("relieve_app:thanks", args=[reference]))
        response.status_code = 303  # See Other: the browser GETs the page, a reload posts nothing
        return response
    body = {"id": pk, "reference": reference, "status": status, "status_url": status_url}
    response = JsonResponse(body, status=202)
    response["Location"] = status_url
    return response


def _pretend_accepted(request, as_json):
    """The honeypot was filled: answer like a success, so a bot learns nothing, but store and send nothing.

    A decoy reference looks like a real one and its pages say "queued"; JSON says `"id": null`.
    """
    logger.info(
        "Dropped a contact message from %s: the hidden %r field was filled.",
        request.META.get("REMOTE_ADDR", "?"),
        HONEYPOT,
    )
    return _accepted(request, as_json, references.decoy(), None, MailOutcome.Status.QUEUED)


def _unavailable(request, as_json, data, busy=False):
    """Not taken: the visitor keeps the message (the form is filled again) and sends it later."""
    reason = "Too many messages are waiting to be sent. " if busy else ""
    message = (
        f"{reason}Your message could not be taken just now and was not sent. "
        f"Please send it again in {UNAVAILABLE_RETRY_AFTER} seconds."
    )
    response = _refuse(request, as_json, message, status=503, initial=data)
    response["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER)
    return response


def _refuse(request, as_json, message, status, initial=None):
    if as_json:
        return answers.error(message, status)
    context = {"form": ContactForm(initial=initial), "request_error": message}
    return render(request, TEMPLATE, context, status=status)
