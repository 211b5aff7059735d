"""Reading a contact post: a JSON object or a form, each way it can fail a BadBody with its status.

Django refuses some bodies by raising (too large, too many fields, broken multipart, a form in a
charset other than UTF-8); left alone, those become its bare 400 page. As BadBody they become a
message in the contact page's own HTML or JSON.
"""

import json

from django.conf import settings
from django.core.exceptions import BadRequest, RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http.multipartparser import MultiPartParserError

from relieve_app.contact.forms import ContactForm

JSON = "application/json"


class BadBody(ValueError):
    """A request body that cannot be read as the form's fields; `status` is the answer's."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def check_size(request):
    """413 for a body over DATA_UPLOAD_MAX_MEMORY_SIZE, judged by Content-Length before anything reads it.

    Django checks that limit only once the body is read, and leaves file parts out of it; the contact
    form has no files, so no request to it is legitimately bigger.
    """
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is not None and _content_length(request) > limit:
        raise _too_large()


def form_data(request):
    """The posted fields, as a dict of strings (JSON) or the QueryDict of a form."""
    return _json_data(request) if request.content_type == JSON else _form_fields(request)


def _json_data(request):
    try:
        data = json.loads(request.body)
    except RequestDataTooBig:  # Content-Length understated, e.g. chunked under ASGI
        raise _too_large() from None
    except (ValueError, RecursionError) as exc:
        raise BadBody(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadBody("The request body must be a JSON object with emitter, subject and body.")
    fields = {name: data[name] for name in ContactForm.base_fields if data.get(name) is not None}
    wrong = [name for name, value in fields.items() if not isinstance(value, str)]
    if wrong:
        raise BadBody(f"These fields must be strings: {', '.join(wrong)}.")
    # JSON lets lone surrogates in ("\\ud800"); no page, database or mail can encode them.
    broken = [name for name, value in fields.items() if not _encodable(value)]
    if broken:
        raise BadBody(
            f"These fields hold unpaired UTF-16 surrogates, which are not text: {', '.join(broken)}."
        )
    return fields


def _form_fields(request):
    try:
        return request.POST
    except RequestDataTooBig:
        raise _too_large() from None
    except (TooManyFieldsSent, TooManyFilesSent) as exc:
        raise BadBody(f"The request has too many fields: {exc}") from None
    except (BadRequest, MultiPartParserError) as exc:
        raise BadBody(f"The request body is not a readable form: {exc}") from None


def _encodable(text):
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _content_length(request):
    """Like Django: a malformed Content-Length counts as 0 (Django then reads no body, or checks its size)."""
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0)
    except (ValueError, TypeError):
        return 0


def _too_large():
    return BadBody(f"The request is too large: at most {settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes.", 413)
