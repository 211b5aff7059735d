"""Answers in the client's language: JSON to a client that asked for it, the usual HTML otherwise.

Every refusal the contact URLs can give (403 CSRF, 404, 405, 400, 413, 429, 503) goes through here,
so an API client never has to parse Django's HTML error pages.
"""

from functools import wraps

from django.http import Http404, HttpResponseNotAllowed, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils.decorators import decorator_from_middleware

JSON = "application/json"
HTML = "text/html"


def wants_json(request):
    """JSON when the Accept header prefers it; for a JSON body, also when it accepts anything."""
    offered = [JSON, HTML] if request.content_type == JSON else [HTML, JSON]
    return request.get_preferred_type(offered) == JSON


def error(message, status):
    """The JSON shape of every refusal: the form's own, with the message under ``__all__``."""
    return JsonResponse({"errors": {"__all__": [message]}}, status=status)


def allow(*methods):
    """Like require_http_methods, but a JSON client's 405 says which methods it may use."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method in methods:
                return view(request, *args, **kwargs)
            if not wants_json(request):
                return HttpResponseNotAllowed(methods)
            response = error(f"{request.method} is not allowed here; use {', '.join(methods)}.", 405)
            response["Allow"] = ", ".join(methods)
            return response

        return wrapper

    return decorator


class JsonCsrf(CsrfViewMiddleware):
    """Django's CSRF check; its refusal is JSON for a JSON client, with how to get a token."""

    def _reject(self, request, reason):
        if not wants_json(request):
            return super()._reject(request, reason)
        return error(
            f"CSRF check failed: {reason.rstrip('.')}. GET this URL with Accept: application/json for a "
            "csrf_token and its cookie, then post with the cookie and the token in an X-CSRFToken header.",
            403,
        )


csrf_protect = decorator_from_middleware(JsonCsrf)


def not_found(request, message="There is nothing at this address."):
    """404 in JSON, or raised for the project's own 404 page (or Django's debug page)."""
    if wants_json(request):
        return error(message, 404)
    raise Http404(message)
