"""The Duo Auth API v2 endpoints. Thin: parse, authenticate, call a service, answer in Duo's shape."""

import json
import logging
import time

from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from identity import sql
from identity.web import client_ip

from . import services, signing

log = logging.getLogger(__name__)


def _ok(response) -> JsonResponse:
    return JsonResponse({"stat": "OK", "response": response})


def _error(error: services.ApiError) -> JsonResponse:
    return JsonResponse({"stat": "FAIL", "code": error.code, "message": error.message}, status=error.http_status)


def _signed_request(request) -> signing.SignedRequest:
    return signing.SignedRequest(
        method=request.method,
        host=request.get_host(),
        path=request.path,
        query={key: request.GET.getlist(key) for key in request.GET},
        body=request.body,
        content_type=request.content_type or "",
        date=request.headers.get("X-Duo-Date") or request.headers.get("Date", ""),
        duo_headers={k.lower(): v for k, v in request.headers.items() if k.lower().startswith("x-duo-")},
    )


def _params(signed: signing.SignedRequest) -> dict[str, str]:
    """Parameters as one value each: JSON body (signature v5) or query string and form body (v2)."""
    if signed.content_type == "application/json":
        try:
            data = json.loads(signed.body or b"{}")
        except ValueError as error:
            raise services.api_error(services.INVALID_PARAMS, "body is not JSON") from error
        if not isinstance(data, dict):
            raise services.api_error(services.INVALID_PARAMS, "body is not an object")
        return {str(k): str(v) for k, v in data.items()}
    return {k: v[-1] for k, v in signing.form_params(signed).items()}


def _endpoint(handler):
    """Answer with ``handler(integration, params, ip)`` for a request :func:`services.answer_signed` accepts.

    The whole request is one transaction (the remembered signature, the verification and its audit event); a
    refusal in Duo's shape commits its audit event; anything unexpected answers with an error, never allow (API-07).
    """

    @csrf_exempt
    def view(request):
        sql.without_health_check()  # a connection the server ended is replaced; one lost silently fails closed
        try:
            signed, ip = _signed_request(request), client_ip(request)
            answer = services.answer_signed(
                signed,
                authorization=request.headers.get("Authorization", ""),
                client_ip=ip,
                handle=lambda integration: handler(integration, _params(signed), ip),
            )
            return _ok(answer)
        except services.ApiError as error:
            return _error(error)
        except Exception:
            log.exception("Auth API request failed; answered with an error, never allow")
            return JsonResponse({"stat": "FAIL", "code": 50000, "message": "Internal error"}, status=500)

    return view


@require_GET
def ping(request):
    return _ok({"time": int(time.time())})


check = require_GET(_endpoint(lambda integration, params, ip: {"time": int(time.time())}))
preauth = require_http_methods(["POST"])(
    _endpoint(lambda integration, params, ip: services.preauth(integration, params, client_ip=ip))
)


def _auth(integration, params, ip):
    answer = services.auth(integration, params, client_ip=ip)
    if params.get("async") == "1":
        return {"txid": services.record_async(integration, answer)}
    return answer


auth = require_http_methods(["POST"])(_endpoint(_auth))
auth_status = require_GET(_endpoint(lambda integration, params, ip: services.auth_status(integration, params)))


def _no_logo(integration, params, ip):
    raise services.ApiError(404, 40401, "Resource not found: no logo is configured")


logo = require_GET(_endpoint(_no_logo))
