"""The id of the request being served, for the logs and the audit log (docs/operations.md, "Logs").

A web request, an Auth API request, a RADIUS request and a Celery task each run with one id in a context variable:
taken from a well-formed ``X-Request-ID`` (a load balancer's or the VPN's), else made here. Every log record of that
work carries it (:class:`RequestIdFilter`), every audit event it writes keeps it in its details under
``request_id``, and the tasks it queues take it along in their message headers (config/celery.py).

Only the standard library here: the LOGGING setting names this module's filter before the apps load.
"""

import contextvars
import logging
import re
import secrets
import time
from contextlib import contextmanager

HEADER = "X-Request-ID"
META_KEY = "HTTP_X_REQUEST_ID"
# What a proxy's id looks like (a UUID, a hex string, AWS's "Root=1-..."): anything else is not ours to repeat into
# logs and headers, and a fresh id replaces it.
_WELL_FORMED = re.compile(r"[A-Za-z0-9._:=+/-]{8,64}")

_current: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)


def new() -> str:
    return secrets.token_hex(16)


def accept(offered: str | None) -> str:
    """``offered`` when it is a well-formed id, else a fresh one."""
    if offered and _WELL_FORMED.fullmatch(offered):
        return offered
    return new()


def get() -> str | None:
    return _current.get()


@contextmanager
def bound(request_id: str | None):
    """Run the block as the work of ``request_id`` (None: of no request)."""
    token = _current.set(request_id)
    try:
        yield request_id
    finally:
        _current.reset(token)


def set_current(request_id: str | None) -> contextvars.Token:
    return _current.set(request_id)


def reset(token: contextvars.Token) -> None:
    _current.reset(token)


access_log = logging.getLogger("request")


def middleware(get_response):
    """Outermost middleware of the site and of the Auth API: the request's id, and one log line per request.

    The line names the URL pattern, not the path: a path may hold a link's token. No query string, no body.
    """

    def handle(request):
        began = time.monotonic()
        token = _current.set(accept(request.META.get(META_KEY)))
        try:
            response = get_response(request)
            response[HEADER] = _current.get()
            match = getattr(request, "resolver_match", None)
            route = f"/{match.route}" if match is not None else "(no route)"
            duration_ms = round((time.monotonic() - began) * 1000, 1)
            access_log.info(
                "%s %s %s %.1f ms",
                request.method,
                route,
                response.status_code,
                duration_ms,
                extra={
                    "method": request.method,
                    "route": route,
                    "status": response.status_code,
                    "duration_ms": duration_ms,
                },
            )
            return response
        finally:
            _current.reset(token)

    return handle
