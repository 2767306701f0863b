"""Statements the hot paths send many times a second, prepared once per connection on PostgreSQL, and the
request transaction whose last message carries its COMMIT.

Django's own cursors bind parameters on the client and never prepare, so PostgreSQL parses and plans every query
again. A statement sent for every VPN check or every audit event is instead sent through a server-binding psycopg
cursor on Django's connection with ``prepare=True``: parsed and planned once per connection. Elsewhere (SQLite,
the embedded default) Django's cursor runs it. Parameters are named (``%(name)s``) in both.

A VPN check's last statement goes out with the statements queued for its commit and the COMMIT itself, in one
message (:func:`request_transaction`, :func:`at_commit`, :func:`execute_and_commit`), so the locks it holds are
released without waiting for the process that answers.
"""

import time
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
    the outermost block, :func:`execute_and_commit` may send its COMMIT with the request's last statement, and
    :func:`at_commit` statements wait to travel with it (or run as the block ends); nested in another block (a
    test's, a caller's) it is a plain ``atomic()`` and the outer block decides.
    """
    db = connections[DEFAULT_DB_ALIAS]
    with transaction.atomic():
        block = db.atomic_blocks[-1]
        block.commits_with_last_statement = len(db.atomic_blocks) == 1
        block.at_commit = []
        yield
        # Reached only when the block ends without an error, and only if no last statement took them along.
        while block.at_commit:
            execute(*block.at_commit.pop(0))


def _request_block(db):
    """The outermost :func:`request_transaction` block, when that is where the caller is; else None."""
    if db.vendor != "postgresql" or len(db.atomic_blocks) != 1 or not db.commit_on_exit:
        return None
    block = db.atomic_blocks[0]
    return block if getattr(block, "commits_with_last_statement", False) else None


def at_commit(sql: str, params: dict) -> bool:
    """Have ``sql`` run in the request's transaction before it commits; an error it raises rolls the request back.

    True: queued, to go out in one message with the request's last statement (:func:`execute_and_commit`),
    before it, or to run as the :func:`request_transaction` block ends. False: there is no such block here (a
    test's block, a caller's, SQLite); nothing was queued, and the caller runs its statement itself.
    """
    block = _request_block(connections[DEFAULT_DB_ALIAS])
    if block is None:
        return False
    block.at_commit.append((sql, params))
    return True


def execute_and_commit(sql: str, params: dict, *, fetch: str | None = None):
    """Run ``sql`` as the last statement of the request's transaction and commit it in the same round trip.

    For a statement that takes a lock every other request waits for (the audit chain's): with the COMMIT sent
    along, PostgreSQL releases the lock as soon as the commit is durable, without waiting for this process to read
    the result and answer (a thread that may be waiting for the GIL meanwhile). Only inside an outermost
    :func:`request_transaction`, so the commit is the one it would have made: Django's own commit at the block's
    end then finds nothing left to do and runs the on-commit hooks as usual. Anywhere else (inside any other
    block, on SQLite) it runs as :func:`execute` and the enclosing block commits. Statements queued with
    :func:`at_commit` go first in the same message. An error raised after this returns can no longer undo what it
    committed; callers answer such an error with a refusal.
    """
    db = connections[DEFAULT_DB_ALIAS]
    block = _request_block(db)
    if block is None:
        return execute(sql, params, fetch=fetch)
    db.validate_no_broken_transaction()
    db.ensure_connection()
    started = time.monotonic()
    statements, block.at_commit = [*block.at_commit, (sql, params)], []
    try:
        with db.wrap_database_errors, psycopg.ClientCursor(db.connection) as cursor:
            # One simple-protocol message: the queued statements, this one, and the COMMIT, with values quoted by
            # psycopg. An error in any of them skips the rest, COMMIT included. Not prepared by name: psycopg
            # deallocates every prepared statement after any rollback on the connection, so a name kept here could
            # vanish. (Pipeline mode keeps psycopg's own prepared, but leaving it costs one more round trip.)
            cursor.execute("; ".join([*(cursor.mogrify(text, values) for text, values in statements), "COMMIT"]))
            for _ in statements[:-1]:
                cursor.nextset()
            return _fetch(cursor, fetch)
    finally:
        if db.queries_logged:
            for text, _ in statements:
                db.queries_log.append({"sql": text, "time": f"{time.monotonic() - started:.3f}"})
            db.queries_log.append({"sql": "COMMIT", "time": "0.000"})


def _fetch(cursor, fetch: str | None):
    if fetch == "one":
        return cursor.fetchone()
    if fetch == "all":
        return cursor.fetchall()
    return None
