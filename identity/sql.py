"""Statements the hot paths send many times a second, prepared once per connection on PostgreSQL.

Django's own cursors bind parameters on the client and never prepare, so PostgreSQL parses and plans every query
again. A statement sent for every VPN check or every audit event is instead sent through a server-binding psycopg
cursor on Django's connection with ``prepare=True``: parsed and planned once per connection. Elsewhere (SQLite,
the embedded default) Django's cursor runs it. Parameters are named (``%(name)s``) in both.
"""

import time

import psycopg
from django.db import connection


def execute(sql: str, params: dict, *, fetch: str | None = None):
    """Run ``sql`` on the default connection; ``fetch`` ``"one"`` or ``"all"`` returns rows, else None.

    Runs in the caller's transaction. Errors are Django's database errors, as from any query.
    """
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return _fetch(cursor, fetch)
    connection.validate_no_broken_transaction()
    connection.ensure_connection()
    started = time.monotonic()
    try:
        with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
            cursor.execute(sql, params, prepare=True)
            return _fetch(cursor, fetch)
    finally:
        if connection.queries_logged:
            # Counted as Django counts its own queries, so the pinned query counts see these statements too.
            connection.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})


def _fetch(cursor, fetch: str | None):
    if fetch == "one":
        return cursor.fetchone()
    if fetch == "all":
        return cursor.fetchall()
    return None
