"""Statements the hot paths send many times a second, prepared once per connection on PostgreSQL.

Django's own cursors bind parameters on the client and never prepare, so PostgreSQL parses and plans every query
again. A statement sent for every VPN check or every audit event is instead sent through a server-binding psycopg
cursor on Django's connection with ``prepare=True``: parsed and planned once per connection. Elsewhere (SQLite,
the embedded default) Django's cursor runs it. Parameters are named (``%(name)s``) in both.
"""

import re
import time
import weakref
from contextlib import contextmanager

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections, transaction


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


@contextmanager
def request_transaction():
    """One hot-path request's transaction: Django's ``atomic()``, which its last statement may commit.

    Opened by whoever answers the request (the Auth API's views, the RADIUS server), around all of it. When it is
    the outermost block, :func:`execute_and_commit` may send its COMMIT with the request's last statement; nested
    in another block (a test's, a caller's) it is a plain ``atomic()`` and the outer block decides.
    """
    db = connections[DEFAULT_DB_ALIAS]
    with transaction.atomic():
        db.atomic_blocks[-1].commits_with_last_statement = len(db.atomic_blocks) == 1
        yield


def execute_and_commit(sql: str, params: dict, *, fetch: str | None = None):
    """Run ``sql`` as the last statement of the request's transaction and commit it in the same round trip.

    For a statement that takes a lock every other request waits for (the audit chain's): with the COMMIT sent
    along, PostgreSQL releases the lock as soon as the commit is durable, without waiting for this process to read
    the result and answer (a thread that may be waiting for the GIL meanwhile). Only inside an outermost
    :func:`request_transaction`, so the commit is the one it would have made: Django's own commit at the block's
    end then finds nothing left to do and runs the on-commit hooks as usual. Anywhere else (inside any other
    block, on SQLite) it runs as :func:`execute` and the enclosing block commits. An error raised after this
    returns can no longer undo what it committed; callers answer such an error with a refusal.
    """
    db = connections[DEFAULT_DB_ALIAS]
    outermost = len(db.atomic_blocks) == 1 and getattr(db.atomic_blocks[0], "commits_with_last_statement", False)
    if db.vendor != "postgresql" or not outermost or not db.commit_on_exit:
        return execute(sql, params, fetch=fetch)
    db.validate_no_broken_transaction()
    db.ensure_connection()
    started = time.monotonic()
    try:
        with db.wrap_database_errors, psycopg.ClientCursor(db.connection) as cursor:
            name, names = _prepared(db.connection, sql)
            # One simple-protocol message: the prepared statement, its values quoted by psycopg, and the COMMIT.
            # (Pipeline mode would send the same two, but answers leaving it with one more round trip.)
            call = f"EXECUTE {name}({', '.join(['%s'] * len(names))})" if names else f"EXECUTE {name}"
            cursor.execute(cursor.mogrify(call, [params[n] for n in names]) + "; COMMIT")
            return _fetch(cursor, fetch)
    finally:
        if db.queries_logged:
            db.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})
            db.queries_log.append({"sql": "COMMIT", "time": "0.000"})


_NAMED = re.compile(r"%\((\w+)\)s")
# Per connection (a new one after a reconnect has none): the statements it has prepared, by text.
_PREPARED: "weakref.WeakKeyDictionary[psycopg.Connection, dict[str, tuple[str, list[str]]]]" = (
    weakref.WeakKeyDictionary()
)


def _prepared(conn: psycopg.Connection, sql: str) -> tuple[str, list[str]]:
    """The name ``sql`` is prepared under on ``conn`` (``PREPARE`` on first use), and its parameters in order."""
    known = _PREPARED.setdefault(conn, {})
    if sql not in known:
        names: list[str] = []

        def position(match: re.Match) -> str:
            if match[1] not in names:
                names.append(match[1])
            return f"${names.index(match[1]) + 1}"

        name = f"enrollment_{len(known) + 1}"
        with conn.cursor() as cursor:
            cursor.execute(f"PREPARE {name} AS {_NAMED.sub(position, sql)}")
        known[sql] = (name, names)
    return known[sql]


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
