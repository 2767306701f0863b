"""The Duo Auth API v2 endpoints. Thin: parse, authenticate, call a service, answer in Duo's shape."""

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from django.core.exceptions import DisallowedHost, TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from identity import metrics, sql
from identity.web import client_ip

from . import services, signing
from .models import Integration

log = logging.getLogger(__name__)

# An Auth API request carries a few hundred bytes; a body past this is not a VPN asking, and is refused unread.
MAX_BODY_BYTES = 64 * 1024


def _ok(response: dict) -> JsonResponse:
    return JsonResponse({"stat": "OK", "response": response})


def _error(error: services.ApiError) -> JsonResponse:
    return JsonResponse({"stat": "FAIL", "code": error.code, "message": error.message}, status=error.http_status)


def refuse_malformed(request: HttpRequest) -> JsonResponse | None:
    """Duo's error answer for a request no VPN sends, judged before any statement or audit event (API-10); else None.

    A Host outside ``ALLOWED_HOSTS``, a ``Content-Length`` that is not a number or is over ``MAX_BODY_BYTES`` (the
    body is not read), more query parameters than Django parses, a form body that is not UTF-8. Left to Django or to
    the view, a wrong Host or a body past Django's limit was a 500 and an error logged with its traceback; these are
    a stranger's junk, answered 400 or 413.
    """
    try:
        request.get_host()
    except DisallowedHost:
        return _error(services.api_error(services.BAD_REQUEST, "this server does not answer for that Host"))
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = -1
    if length < 0:
        return _error(services.api_error(services.BAD_REQUEST, "Content-Length is not a number of bytes"))
    if length > MAX_BODY_BYTES:
        return _error(services.api_error(services.TOO_LARGE, f"at most {MAX_BODY_BYTES} bytes"))
    try:
        request.GET  # noqa: B018 (parsed here, where too many fields is refused, and kept for the view)
        if request.content_type == "application/x-www-form-urlencoded":
            request.body.decode("utf-8")
    except TooManyFieldsSent:
        return _error(services.api_error(services.BAD_REQUEST, "too many parameters"))
    except UnicodeDecodeError:
        return _error(services.api_error(services.BAD_REQUEST, "the body is not UTF-8"))
    return None


def _signed_request(request: HttpRequest) -> signing.SignedRequest:
    assert request.method is not None  # set on every request Django's handler serves
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
    """Parameters as one value each: JSON body (signature v5) or query string and form body (v2).

    A JSON ``null`` is a parameter not given. A value that is not a string or a number, or holds what PostgreSQL
    cannot store (a NUL character, half a surrogate pair), is refused as invalid before it reaches a query or an
    audit event (API-10).
    """
    if signed.content_type == "application/json":
        try:
            data = json.loads(signed.body or b"{}")
        except ValueError as error:
            raise services.api_error(services.INVALID_PARAMS, "body is not JSON") from error
        if not isinstance(data, dict):
            raise services.api_error(services.INVALID_PARAMS, "body is not an object")
        if any(isinstance(v, bool) or not isinstance(v, str | int | float | None) for v in data.values()):
            raise services.api_error(services.INVALID_PARAMS, "values must be strings or numbers")
        params = {k: str(v) for k, v in data.items() if v is not None}
    else:
        params = {k: v[-1] for k, v in signing.form_params(signed).items()}
    if not all(_storable(text) for pair in params.items() for text in pair):
        raise services.api_error(services.INVALID_PARAMS, "a NUL character or invalid Unicode")
    return params


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# A handler answers (integration, params, client address) with the response, or with (response, Duo's result).
Handler = Callable[[Integration, dict[str, str], str | None], Any]


def _endpoint(handler: Handler, *, door: str | None = None) -> Callable[[HttpRequest], HttpResponse]:
    """Answer with ``handler(integration, params, ip)`` for a request :func:`services.answer_signed` accepts.

    The whole request is one transaction (the remembered signature, the verification and its audit event); a
    refusal in Duo's shape commits its audit event; anything unexpected answers with an error, never allow (API-07).
    With a ``door`` the request is a VPN check: the handler returns (answer, Duo's result) and the check is counted
    under that door with the result (``refused`` for a refusal in Duo's shape, ``error`` for an internal error).
    """

    @csrf_exempt
    def view(request: HttpRequest) -> HttpResponse:
        started, result = time.perf_counter(), "refused"
        try:
            refusal = refuse_malformed(request)
            if refusal is not None:
                return refusal
            sql.replace_if_ended()  # a connection the server ended is replaced; one lost silently fails closed
            signed, ip = _signed_request(request), client_ip(request)
            answer = services.answer_signed(
                signed,
                authorization=request.headers.get("Authorization", ""),
                client_ip=ip,
                handle=lambda integration: handler(integration, _params(signed), ip),
            )
            if door:
                answer, result = answer
            return _ok(answer)
        except services.ApiError as error:
            return _error(error)
        except Exception:
            result = "error"
            log.exception("Auth API request failed; answered with an error, never allow")
            return _error(services.api_error(services.INTERNAL))
        finally:
            if door:
                metrics.vpn_check(door, result, started)

    return view


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """The Auth API process's answer to a path that is not the Auth API's (config.urls_api)."""
    return _error(services.api_error(services.NOT_FOUND))


def server_error(request: HttpRequest) -> HttpResponse:
    """The Auth API process's answer to an error no view caught (config.urls_api): never allow (API-07)."""
    return _error(services.api_error(services.INTERNAL))


@require_GET
def ping(request: HttpRequest) -> HttpResponse:
    return _ok({"time": int(time.time())})


check = require_GET(_endpoint(lambda integration, params, ip: {"time": int(time.time())}))
preauth = require_http_methods(["POST"])(
    _endpoint(lambda integration, params, ip: services.preauth(integration, params, client_ip=ip))
)


def _auth(integration: Integration, params: dict[str, str], ip: str | None) -> tuple[dict, str]:
    answer = services.auth(integration, params, client_ip=ip)
    if params.get("async") == "1":
        return {"txid": services.record_async(integration, answer)}, answer["result"]
    return answer, answer["result"]


auth = require_http_methods(["POST"])(_endpoint(_auth, door="auth_api"))
auth_status = require_GET(_endpoint(lambda integration, params, ip: services.auth_status(integration, params)))


def _no_logo(integration: Integration, params: dict[str, str], ip: str | None) -> dict:
    raise services.ApiError(404, 40401, "Resource not found: no logo is configured")


logo = require_GET(_endpoint(_no_logo))
