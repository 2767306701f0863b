"""The Auth API process's gate (config.settings_api): a request no VPN sends is refused before anything reads it."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from .views import refuse_malformed

API_PREFIX = "/auth/v2/"


def refuse_malformed_requests(
    get_response: Callable[[HttpRequest], HttpResponse],
) -> Callable[[HttpRequest], HttpResponse]:
    """Duo's error answer for a malformed Auth API request (API-10, ``vpn.views.refuse_malformed``), before the
    middleware after this one reads its Host; every other path (the metrics, a stranger's 404) goes on unjudged."""

    def gate(request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(API_PREFIX):
            refusal = refuse_malformed(request)
            if refusal is not None:
                return refusal
        return get_response(request)

    return gate
