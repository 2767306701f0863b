"""The service's Prometheus metrics: defined here, counted by the services where each outcome is decided.

Every app may import this module (it imports no other app of ours). Labels take values from short fixed lists
(a door, a result, a factor's kind, a channel, an action's name): never a person's ID, a phone number or a code.

Processes. ``prometheus_client`` keeps counts in the process that counts them. Under gunicorn's several workers
(and Celery's prefork pool) set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory of that service's own before it
starts: each process then writes its counts to files there and a scrape adds them up (:func:`exposition`). Without
it (``manage.py runserver``, the tests, the RADIUS server, which is one process) the counts live in the process.

Scrape-time collectors: a number that is a fact of the database (the outbox's queue and its oldest message) is read
when Prometheus asks the web site, by a collector an app registers with :func:`add_scrape_collector`, never kept in
a process.

``METRICS_ENABLED=false`` turns the counting into no-ops; it exists for the benchmark that measures what counting
costs (bench/vpn.py), not for production.
"""

import hmac
import os
import threading
import time
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.conf import settings
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

from .networks import address_in

ENABLED = settings.METRICS_ENABLED
disable_created_metrics()  # a "_created" series per counter doubles the scrape and no dashboard here reads it

# --- The VPN gate ---------------------------------------------------------------------------------------
# door: auth_api | radius. result: allow | deny | challenge (RADIUS asks for the code) | refused (the request was
# refused before any person was looked at: signature, date, network, parameters) | error (no answer but an error).
VPN_CHECKS = Counter("enrollment_vpn_checks", "VPN checks answered, by door and result.", ["door", "result"])
# From the request's arrival in our code to its answer; the buckets bracket a check's usual 2 to 50 ms.
VPN_CHECK_SECONDS = Histogram(
    "enrollment_vpn_check_seconds",
    "Time to answer a VPN check, by door.",
    ["door"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0),
)
RADIUS_DROPPED = Counter("enrollment_radius_dropped", "RADIUS requests dropped without a reply, by reason.", ["reason"])

# --- Sign-in, lockout, help desk ------------------------------------------------------------------------
# factor: password, or the second factor's kind (authenticator_app, phone, backup_code, bypass_code, security_key, passkey, passcode when
# a typed code was tried against several). outcome: ok | wrong | throttled | locked.
SIGNINS = Counter("enrollment_signins", "Web sign-in steps, by factor and outcome.", ["factor", "outcome"])
LOCKOUTS = Counter("enrollment_lockouts", "Accounts locked by failed second factors, by door.", ["entry_point"])
HELPDESK_ACTIONS = Counter(
    "enrollment_helpdesk_actions",
    "Help-desk actions, by action and outcome (done, approval_requested).",
    ["action", "outcome"],
)

# --- The outbox -----------------------------------------------------------------------------------------
# outcome: sent | retry | failed. kind of provider error: transient | permanent | unknown_outcome.
OUTBOX_DELIVERIES = Counter(
    "enrollment_outbox_deliveries",
    "Outbound message attempts finished, by channel and outcome.",
    ["channel", "outcome"],
)
OUTBOX_PROVIDER_ERRORS = Counter(
    "enrollment_outbox_provider_errors",
    "Errors from the SMS/voice provider or mail server, by channel and kind.",
    ["channel", "kind"],
)

# --- The directory (identity/directory/sync.py) -----------------------------------------------------------
# status: applied | held (waiting for a superuser: too many leavers) | failed (nobody changed, unless it stopped
# partway through applying). Dry runs are not counted. change: created | updated | deactivated | reactivated |
# errors, by applied runs.
DIRECTORY_SYNCS = Counter("enrollment_directory_syncs", "Directory sync runs finished, by status.", ["status"])
DIRECTORY_SYNC_PEOPLE = Counter(
    "enrollment_directory_sync_people", "People changed by applied directory syncs, by change.", ["change"]
)

# --- Reports --------------------------------------------------------------------------------------------
# outcome: queued | done | failed (the filters no longer validate) | error (the worker raised).
EXPORT_JOBS = Counter(
    "enrollment_export_jobs", "Background exports, by report, format and outcome.", ["report", "format", "outcome"]
)


VPN_DOORS, VPN_RESULTS = ("auth_api", "radius"), ("allow", "deny", "challenge", "refused", "error")
# Every door and result from the start, at 0 (a rate() or an alert needs the series before the first error), and
# kept: the hot path skips labels()' lookup under its lock.
_VPN_CHECKS = {
    (door, result): VPN_CHECKS.labels(door, result)
    for door in VPN_DOORS
    for result in VPN_RESULTS
    if (door, result) != ("auth_api", "challenge")
}
_VPN_CHECK_SECONDS = {door: VPN_CHECK_SECONDS.labels(door) for door in VPN_DOORS}


def count(counter: Counter, *labels: str) -> None:
    """Add one to ``counter`` with these label values (nothing when metrics are off)."""
    if ENABLED:
        counter.labels(*labels).inc()


def add(counter: Counter, amount: float, *labels: str) -> None:
    """Add ``amount`` to ``counter`` with these label values (nothing when metrics are off or it is 0)."""
    if ENABLED and amount:
        counter.labels(*labels).inc(amount)


def count_on_commit(counter: Counter, *labels: str) -> None:
    """Add one once the current transaction commits: an outcome rolled back did not happen."""
    if ENABLED:
        from django.db import transaction

        transaction.on_commit(counter.labels(*labels).inc)


def vpn_check(door: str, result: str, started: float) -> None:
    """One VPN check answered with ``result``, begun at ``time.perf_counter()`` value ``started``."""
    if ENABLED:
        _VPN_CHECKS[door, result].inc()
        _VPN_CHECK_SECONDS[door].observe(time.perf_counter() - started)


# --- Scraping --------------------------------------------------------------------------------------------

_scrape_collectors: list = []


def add_scrape_collector(collector) -> None:
    """Read ``collector`` (an object with ``collect()``, as prometheus_client defines it) at every scrape."""
    _scrape_collectors.append(collector)


class _Everything:
    """What a scrape reads: the counts (of every process, in multiprocess mode) and the scrape-time collectors."""

    def __init__(self, database: bool):
        self.database = database

    def collect(self):
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:  # as prometheus_client decides it
            yield from multiprocess.MultiProcessCollector(None).collect()
        else:
            yield from REGISTRY.collect()
        for collector in _scrape_collectors if self.database else ():
            yield from collector.collect()


def exposition(*, database: bool = True) -> tuple[bytes, str]:
    """The text a scrape gets, and its content type; ``database``: with the scrape-time collectors (the web site's
    scrape has them; the RADIUS server's and a worker's would only repeat them)."""
    return generate_latest(_Everything(database)), CONTENT_TYPE_LATEST


def scrape_allowed(address: str | None, authorization: str) -> bool:
    """Whether a scrape from ``address`` (the client's address by the project's rule) with this Authorization header
    may read the metrics: an address in ``METRICS_NETWORKS``, or ``Bearer <METRICS_TOKEN>`` (compared in constant
    time; no token configured means none is accepted)."""
    token = settings.METRICS_TOKEN
    offered = authorization.removeprefix("Bearer ").strip() if authorization.startswith("Bearer ") else ""
    if token and offered and hmac.compare_digest(offered.encode(), token.encode()):
        return True
    return address_in(settings.METRICS_NETWORKS, address)


# --- A port of its own, for the processes that serve no web site (RADIUS, Celery) -----------------------


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass  # a scrape every 15 s is not news


def _metrics_app(environ, start_response):
    """The scrape endpoint as a WSGI app: the same access rule as the web site's ``/metrics``, any path."""
    if not scrape_allowed(environ.get("REMOTE_ADDR"), environ.get("HTTP_AUTHORIZATION", "")):
        start_response("403 Forbidden", [("Content-Type", "text/plain")])
        return [b"Forbidden\n"]
    body, content_type = exposition(database=False)
    start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def serve_on_port(port: int, host: str = "") -> WSGIServer:
    """Serve the metrics on ``host:port`` from a daemon thread of this process; returns the server."""
    server = make_server(host or settings.METRICS_HOST, port, _metrics_app, _ThreadingServer, _QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
