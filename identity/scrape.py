"""``GET /metrics``: the Prometheus scrape, for the networks and the token the settings allow (identity.metrics)."""

from django.http import HttpResponse, HttpResponseForbidden
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import metrics
from .web import client_ip


@never_cache
@require_GET
def metrics_view(request):
    if not metrics.scrape_allowed(client_ip(request), request.headers.get("Authorization", "")):
        return HttpResponseForbidden("Forbidden\n", content_type="text/plain")
    body, content_type = metrics.exposition()
    return HttpResponse(body, content_type=content_type)
