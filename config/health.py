"""The health probes: ``/healthz`` (this process answers) and ``/readyz`` (it can serve). docs/operations.md says
what each checks and which one a load balancer should ask.

:func:`middleware`, first in the site's and the Auth API's MIDDLEWARE, answers both (and ``/metrics``) before any
other middleware: no session, no CSRF, no Host check and no HTTPS redirect, because a load balancer probes a node by
its address over plain HTTP, and ``/healthz`` must not touch the database.
Neither is ever cached. Everyone gets a one-word status; which check failed and why only a client in
``HEALTH_DETAIL_NETWORKS``, by the site's rule for the client's address (``identity.web.client_ip``: behind
``TRUSTED_PROXY_COUNT`` proxies, the address the outermost one saw).
"""

import time
from collections.abc import Callable

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from devices.selectors import oldest_queued_message_at
from identity.networks import address_in
from identity.scrape import metrics_view
from identity.web import client_ip


class _Migrations:
    # Once this process has seen the database fully migrated it never asks again: its code gains no migration while
    # it runs, and building the plan reads every migration file. Until then, every probe asks.
    complete = False


def unapplied_migrations(connection) -> list[str]:
    """The migrations this code has that the database has not applied, as "app.name", in the order ``migrate``
    would apply them: Django's own plan towards every app's latest migration, as ``migrate --check`` reads it."""
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]


def check_database() -> dict:
    """PostgreSQL answers, takes writes, and has every migration this code has."""
    connection = connections[DEFAULT_DB_ALIAS]
    if _read_only(connection):
        return {"ok": False, "read_only": True}
    if _Migrations.complete:
        return {"ok": True}
    unapplied = unapplied_migrations(connection)
    if unapplied:
        return {"ok": False, "unapplied_migrations": len(unapplied), "first_unapplied": unapplied[0]}
    _Migrations.complete = True
    return {"ok": True}


def _read_only(connection) -> bool:
    """Whether the server refuses writes: a standby, or a server set read-only. Every request that matters writes
    (the spent step, the audit event, the session), so a node whose connection reached such a server cannot serve:
    a ``DATABASE_URL`` naming one member where the primary has moved, or a multi-host one without
    ``target_session_attrs=read-write`` (docs/operations.md). One query, which is also the probe's ping."""
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            cursor.execute("SELECT 1")
            return False
        cursor.execute("SELECT current_setting('transaction_read_only')")
        return cursor.fetchone()[0] == "on"


def check_outbox() -> dict:
    """No email, text or call has waited in the queue longer than READY_OUTBOX_MAX_AGE_SECONDS."""
    oldest = oldest_queued_message_at()
    age = max(0, round((timezone.now() - oldest).total_seconds())) if oldest else 0
    limit = settings.READY_OUTBOX_MAX_AGE_SECONDS
    return {"ok": age <= limit, "oldest_queued_seconds": age, "limit_seconds": limit}


def check_directory() -> dict:
    """The directory answers the bind account, when one is configured (every directory person's password needs it)."""
    if not settings.LDAP_SERVER_URIS:
        return {"ok": True, "configured": False}
    from identity.directory import ldap_connection  # python-ldap is an optional extra: only a configured site has it

    ldap_connection.connect().unbind_s()
    return {"ok": True, "configured": True}


# In order: a check after "database" is not run when the database failed (it would only wait for it again).
READY_CHECKS = {"database": check_database, "outbox": check_outbox, "directory": check_directory}


def _describe(error: Exception) -> str:
    first_line = str(error).strip().splitlines()[0][:200] if str(error).strip() else ""
    return f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__


def shows_details(request) -> bool:
    """Whether the client's address is in HEALTH_DETAIL_NETWORKS."""
    return address_in(settings.HEALTH_DETAIL_NETWORKS, client_ip(request))


def run_checks(names) -> dict[str, dict]:
    """The named checks' results, each with ``ok`` and how long it took; an error is a failure, described."""
    results: dict[str, dict] = {}
    for name, check in READY_CHECKS.items():
        if name not in names:
            continue
        if name != "database" and not results.get("database", {"ok": True})["ok"]:
            results[name] = {"ok": False, "error": "not checked: the database failed"}
            continue
        started = time.monotonic()
        try:
            result = check()
        except Exception as error:  # a probe answers "unavailable", never a 500
            result = {"ok": False, "error": _describe(error)}
        result["ms"] = round((time.monotonic() - started) * 1000, 1)
        results[name] = result
    return results


@never_cache
@require_safe
def healthz(request):
    """The process answers. Nothing else is looked at: no database, no session."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request):
    """200 when every check passes, else 503. ``?exclude=NAME`` (repeatable) leaves a check out."""
    excluded = set(request.GET.getlist("exclude"))
    unknown = sorted(excluded - set(READY_CHECKS))
    if unknown:
        # A typo in a load balancer's probe must not quietly probe something else.
        return JsonResponse(
            {"status": "bad request", "unknown_checks": unknown, "checks": list(READY_CHECKS)}, status=400
        )
    results = run_checks(set(READY_CHECKS) - excluded)
    ready = all(result["ok"] for result in results.values())
    body = {"status": "ok" if ready else "unavailable"}
    if shows_details(request):
        body["checks"] = results
    return JsonResponse(body, status=200 if ready else 503)


PROBES = {"/healthz": healthz, "/readyz": readyz}
# Prometheus scrapes each node by its address over plain HTTP too (deploy/prometheus.yml): the proxy in front of the
# site refuses /metrics from the internet, and a node's address is no host the site's ALLOWED_HOSTS names.
ASKED_BY_ADDRESS = {**PROBES, "/metrics": metrics_view}


def middleware(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """Outermost middleware of the site and of the Auth API: the probes and the metrics are answered here, before
    any other middleware, so no Host check, no HTTPS redirect, no session and no log line (a load balancer and
    Prometheus ask every few seconds, by the node's address, over plain HTTP). The metrics keep their own access
    rule (``identity.scrape``)."""

    def answer_probes(request: HttpRequest) -> HttpResponse:
        probe = ASKED_BY_ADDRESS.get(request.path_info)
        return probe(request) if probe is not None else get_response(request)

    return answer_probes
