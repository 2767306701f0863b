"""The project's one runner for raw SQL: statements the hot paths send many times a second, prepared once per
connection on PostgreSQL, and the one rule for a connection the server dropped.

Django's own cursors bind parameters on the client and never prepare, so PostgreSQL parses and plans every query
again. A statement sent for every VPN check, every audit event or every outbound message is instead sent through a
server-binding psycopg cursor on Django's connection with ``prepare=True`` (when ``DB_PREPARED_STATEMENTS`` is on,
docs/operations.md): parsed and planned once per connection. psycopg's threshold is set for those statements only
(:func:`_preparing`), so it neither prepares nor remembers any of Django's. Elsewhere (SQLite, the embedded default)
Django's cursor runs it. Parameters are named (``%(name)s``) in both. :func:`replace_if_ended` is the rule for a connection
the server dropped, for every caller. Callers: the audit append (``identity.audit``), the
outbox's bookkeeping (``devices.outbox.statements``), the VPN's first read and its remembered signatures (``vpn``),
and the rows every sign-in writes (:func:`save_fields`).
"""

import select
import time
from contextlib import contextmanager

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, NotSupportedError, connections, transaction
from django.db.models import Model
from django.dispatch import Signal

# Sent after every statement run here on PostgreSQL, failed ones too (as Django logs its own queries), with
# ``connection`` (Django's wrapper it ran on), ``sql`` and ``duration`` (seconds). Django's query log never sees these
# statements: the tests' pinned query counts listen here as well (testsupport.CapturedStatements). With no receiver,
# sending costs about half a microsecond (timeit), as much as the two checks of Django's wrapper it replaced.
statement_run = Signal()


def execute(sql: str, params: dict, *, fetch: str | None = None):
    """Run ``sql`` on the default connection; ``fetch`` ``"one"`` or ``"all"`` returns rows, else None.

    Runs in the caller's transaction, or on its own in autocommit; then, first, :func:`replace_if_ended`. Errors
    are Django's database errors, as from any query.
    """
    # One lookup of the thread's connection: each attribute read through ``django.db.connection`` repeats it.
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            return _fetch(cursor, fetch)
    # A transaction Django marked for rollback needs no check here: after a database error PostgreSQL refuses the
    # statement itself (InFailedSqlTransaction, raised as Django's InternalError), and after ``set_rollback(True)``
    # alone the statement runs in a transaction that is rolled back.
    _replace_if_ended(db)
    try:
        return _execute_prepared(db, sql, params, fetch)
    except NotSupportedError:
        # "cached plan must not change result type": a migration changed a table under a statement this connection
        # prepared. Prepared statements belong to their connection, so outside a transaction a new connection
        # prepares it afresh; inside one the transaction fails, and its request with it (fail closed).
        if not transaction.get_autocommit(db.alias):
            raise
        db.close()
        return _execute_prepared(db, sql, params, fetch)


def _execute_prepared(db, sql: str, params: dict, fetch: str | None):
    db.ensure_connection()
    started = time.monotonic()
    try:
        with db.wrap_database_errors, psycopg.Cursor(db.connection) as cursor:
            if not settings.DB_PREPARED_STATEMENTS:
                cursor.execute(sql, params, prepare=False)
                return _fetch(cursor, fetch)
            with _preparing(db.connection):
                cursor.execute(sql, params, prepare=True)
            return _fetch(cursor, fetch)
    finally:
        statement_run.send(sender=type(db), connection=db, sql=sql, duration=time.monotonic() - started)


@contextmanager
def _preparing(conn: psycopg.Connection):
    """psycopg's ``prepare_threshold`` set for one statement, and put back as it was (None, as Django leaves it).

    psycopg prepares nothing while the threshold is None; while it is set it also counts every statement the
    connection runs, keyed by its text, and keeps the last ``prepared_max`` (100) texts. Django binds values on the
    client, so a bulk INSERT's text holds all its values: a batch of 1,000 reminder emails is 0.9 MB of text, kept
    until 100 newer statements push it out. Set only around the statements prepared here, the threshold lets no
    other statement be counted or kept. psycopg still tracks what it prepared (and deallocates it all after a
    rollback of the connection, preparing again on next use); a savepoint's rollback keeps prepared statements
    (they belong to the session, not to a transaction).
    """
    before = conn.prepare_threshold
    conn.prepare_threshold = 0
    try:
        yield
    finally:
        conn.prepare_threshold = before


def save_fields(instance: Model, names: tuple[str, ...]) -> None:
    """``instance.save(update_fields=names)`` as one prepared statement, for the rows every sign-in writes (a
    device's back-off and consumed step, a person's failure count): the UPDATE's text is built once per model and
    field list instead of by the ORM on every check, and PostgreSQL plans it once per connection. Each value is
    prepared by its field's ``get_db_prep_save``, as ``save`` prepares it. Only for models that neither override
    ``save`` nor have ``pre_save``/``post_save`` receivers (none of the project's do), and never for a password.
    """
    key = (type(instance), names)
    if key not in _UPDATES:
        _UPDATES[key] = _update_statement(*key)
    fields, statement = _UPDATES[key]
    db = connections[DEFAULT_DB_ALIAS]
    params = {field.attname: field.get_db_prep_save(getattr(instance, field.attname), db) for field in fields}
    execute(statement, {**params, "pk": instance.pk})


_UPDATES: dict[tuple[type[Model], tuple[str, ...]], tuple[list, str]] = {}


def _update_statement(model: type[Model], names: tuple[str, ...]) -> tuple[list, str]:
    fields = [field for field in model._meta.concrete_fields if field.name in names]
    if model._meta.parents or len(fields) != len(set(names)):  # one table, and every name one of its columns
        raise ValueError(f"{names} are not all columns of {model.__name__}'s one table")
    assignments = ", ".join(f"{field.column} = %({field.attname})s" for field in fields)
    where = f"{model._meta.pk.column} = %(pk)s"
    return fields, f"UPDATE {model._meta.db_table} SET {assignments} WHERE {where}"  # noqa: S608 (our names)


def replace_if_ended() -> None:
    """The one rule for a connection the server dropped: before the work of a request or a task, outside any
    transaction, a connection the server has ended is closed, and the next statement opens a new one.

    A server that ends a connection (a restart, ``pg_terminate_backend``, an idle timeout) says goodbye and closes
    its end, so the idle socket reads ready although nothing was asked: one poll, no round trip, in place of a
    ``SELECT 1`` before every request or message (``CONN_HEALTH_CHECKS``, REL-08). A connection lost without a word
    (a network cut) still fails the next statement: a VPN check answers with an error, never an accept (API-07); an
    outbound message stays queued for its retry or the sweep (REL-02). Inside a transaction nothing is replaced:
    the transaction fails as a whole. :func:`execute` applies the rule before every statement outside a
    transaction; the hot paths' doors call it once at the start of each request.
    """
    _replace_if_ended(connections[DEFAULT_DB_ALIAS])


def _replace_if_ended(db) -> None:
    idle = db.connection is not None and db.vendor == "postgresql" and transaction.get_autocommit(db.alias)
    if idle and _ended_by_server(db.connection):
        db.close()


def _ended_by_server(conn: psycopg.Connection) -> bool:
    """Whether the idle connection's socket has something to read: the server's goodbye, or its end closed."""
    try:
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError, psycopg.Error):  # no socket any more
        return True


def _fetch(cursor, fetch: str | None):
    if fetch == "one":
        return cursor.fetchone()
    if fetch == "all":
        return cursor.fetchall()
    return None
