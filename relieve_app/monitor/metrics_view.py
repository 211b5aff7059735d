"""``metrics/``: the Prometheus exposition for a scraper that sends ``Authorization: Bearer <token>``.

404 while RELIEVE_METRICS_TOKEN is unset, so the URL gives nothing away; 401 to a missing or
wrong token. The token is compared in constant time.
"""

import hmac

from django.http import Http404, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_safe

from relieve_app.conf import app_settings
from relieve_app.monitor import metrics


@csrf_exempt
@require_safe
@never_cache
def metrics_view(request):
    token = app_settings.RELIEVE_METRICS_TOKEN
    if not token:
        raise Http404("There is nothing at this address.")
    scheme, _space, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        response = HttpResponse("A valid Bearer token is needed.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="relieve metrics"'
        return response
    return HttpResponse(metrics.render(), content_type=metrics.CONTENT_TYPE)
