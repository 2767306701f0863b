"""Statements the hot paths send many times a second, prepared once per connection on PostgreSQL.

Django's own cursors bind parameters on the client and never prepare, so PostgreSQL parses and plans every query
again. A statement sent for every VPN check or every audit event is instead sent through a server-binding psycopg
cursor on Django's connection with ``prepare=True``: parsed and planned once per connection. Elsewhere (SQLite,
the embedded default) Django's cursor runs it. Parameters are named (``%(name)s``) in both.
"""

import time

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections


def execute(sql: str, params: dict, *, fetch: str | None = None):
    """Run ``sql`` on the default connection; ``fetch`` ``"one"`` or ``"all"`` returns rows, else None.

    Runs in the caller's transaction. Errors are Django's database errors, as from any query.
    """
    # One lookup of the thread's connection: each attribute read through ``django.db.connection`` repeats it.
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            return _fetch(cursor, fetch)
    db.validate_no_broken_transaction()
    db.ensure_connection()
    started = time.monotonic()
    try:
        with db.wrap_database_errors, psycopg.Cursor(db.connection) as cursor:
            cursor.execute(sql, params, prepare=True)
            return _fetch(cursor, fetch)
    finally:
        if db.queries_logged:
            # Counted as Django counts its own queries, so the pinned query counts see these statements too.
            db.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})


def _fetch(cursor, fetch: str | None):
    if fetch == "one":
        return cursor.fetchone()
    if fetch == "all":
        return cursor.fetchall()
    return None


def without_health_check() -> None:
    """Skip Django's ``SELECT 1`` before this request's first query (``CONN_HEALTH_CHECKS``), for the hot paths.

    A connection the server dropped (a restart, an idle timeout) then fails the request's first statement instead:
    the caller answers with an error, never a success, and Django closes the broken connection as the request
    ends, so the next request gets a new one. One round trip less for every VPN check.
    """
    connections[DEFAULT_DB_ALIAS].health_check_done = True
