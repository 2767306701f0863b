"""The one runner for raw SQL: prepared statements, and its one rule for a connection the server dropped."""

import ast
import gc
import os
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import psycopg
import pytest
from django.db import DatabaseError, IntegrityError, connection, connections, transaction
from django.utils import timezone

from identity import sql
from identity.models import User
from testsupport import CapturedStatements, backend_pid, drop_from_the_server

from .test_private_state import _our_trees

pytestmark = pytest.mark.postgres

_FAILURES = f"UPDATE {User._meta.db_table} SET second_factor_failures = %(n)s WHERE id = %(id)s RETURNING id"  # noqa: S608


@pytest.mark.django_db
def test_named_parameters_and_rows_come_back_as_from_a_cursor(user):
    assert sql.execute(_FAILURES, {"n": 2, "id": user.pk}, fetch="one") == (user.pk,)
    assert sql.execute("SELECT %(a)s::int, %(b)s::text", {"a": 1, "b": "x"}, fetch="all") == [(1, "x")]
    assert sql.execute(_FAILURES, {"n": 3, "id": user.pk}) is None
    assert User.objects.get(pk=user.pk).second_factor_failures == 3


@pytest.mark.django_db
def test_save_fields_writes_the_named_columns_as_save_would_and_nothing_else(user):
    locked_at = timezone.now()
    user.second_factor_failures, user.locked_at, user.locked_until, user.first_name = 4, locked_at, None, "unsaved"
    sql.save_fields(user, ("second_factor_failures", "locked_at", "locked_until"))
    row = User.objects.get(pk=user.pk)
    assert (row.second_factor_failures, row.locked_at, row.locked_until) == (4, locked_at, None)
    assert row.first_name != "unsaved"
    with pytest.raises(ValueError, match="not all columns"):
        sql.save_fields(user, ("second_factor_failures", "no_such_field"))


@pytest.mark.django_db(transaction=True)
def test_rel08_outside_a_transaction_a_connection_the_server_ended_is_replaced_before_the_next_statement(user):
    dropped = backend_pid()
    drop_from_the_server(dropped)
    assert sql.execute(_FAILURES, {"n": 4, "id": user.pk}, fetch="one") == (user.pk,)
    assert backend_pid() != dropped
    assert User.objects.get(pk=user.pk).second_factor_failures == 4


@pytest.mark.django_db(transaction=True)
def test_rel08_the_doors_replace_it_before_their_first_query_whatever_runs_it(user):
    dropped = backend_pid()
    drop_from_the_server(dropped)
    sql.replace_if_ended()
    assert User.objects.get(pk=user.pk).second_factor_failures == 0  # an ORM query, on a new connection
    assert backend_pid() != dropped
    sql.replace_if_ended()  # a live connection is kept
    assert backend_pid() != dropped


@pytest.mark.django_db(transaction=True)
def test_api07_inside_a_transaction_a_dropped_connection_fails_the_transaction_never_a_silent_reconnect(user):
    with pytest.raises(DatabaseError), transaction.atomic():
        sql.execute(_FAILURES, {"n": 6, "id": user.pk})
        drop_from_the_server(backend_pid())
        sql.replace_if_ended()
        sql.execute(_FAILURES, {"n": 7, "id": user.pk})
    connection.close()
    assert User.objects.get(pk=user.pk).second_factor_failures == 0


@pytest.mark.django_db(transaction=True)
def test_statements_are_prepared_unless_db_prepared_statements_is_off(user, settings):
    connection.close()  # a fresh session, so nothing prepared earlier counts
    for n in range(2):
        sql.execute(_FAILURES, {"n": n, "id": user.pk})
    prepared = "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'UPDATE%%second_factor_failures%%'"
    assert sql.execute(prepared, {}, fetch="one") == (1,)
    settings.DB_PREPARED_STATEMENTS = False
    connection.close()
    sql.execute(_FAILURES, {"n": 3, "id": user.pk})
    assert sql.execute(prepared, {}, fetch="one") == (0,)


@pytest.mark.parametrize(
    ("environment", "prepared"),
    [
        ({}, True),
        ({"DB_PREPARED_STATEMENTS": "false"}, False),
        ({"OUTBOX_PREPARED_STATEMENTS": "false"}, False),  # the setting's older name
        ({"OUTBOX_PREPARED_STATEMENTS": "false", "DB_PREPARED_STATEMENTS": "true"}, True),
    ],
)
def test_db_prepared_statements_is_read_under_its_former_name_too(environment, prepared):
    env = {k: v for k, v in os.environ.items() if k not in ("DB_PREPARED_STATEMENTS", "OUTBOX_PREPARED_STATEMENTS")}
    printed = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(settings.DB_PREPARED_STATEMENTS)"],
        env=env | environment | {"DJANGO_SETTINGS_MODULE": "config.settings"},
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    assert printed.stdout.strip() == str(prepared)


_PREPARED_FAILURES = (
    "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'UPDATE%%second_factor_failures%%'"
)


@pytest.mark.django_db(transaction=True)
def test_the_statements_stay_prepared_through_rollbacks_of_transactions_and_savepoints(user):
    connection.close()
    sql.execute(_FAILURES, {"n": 1, "id": user.pk})
    with pytest.raises(RuntimeError), transaction.atomic():  # psycopg deallocates all after a connection's rollback
        sql.execute(_FAILURES, {"n": 2, "id": user.pk})
        raise RuntimeError
    with transaction.atomic():
        with pytest.raises(RuntimeError), transaction.atomic():  # a savepoint's rollback keeps them
            sql.execute(_FAILURES, {"n": 3, "id": user.pk})
            raise RuntimeError
        assert sql.execute(_FAILURES, {"n": 4, "id": user.pk}, fetch="one") == (user.pk,)
    assert sql.execute(_FAILURES, {"n": 5, "id": user.pk}, fetch="one") == (user.pk,)
    assert sql.execute(_PREPARED_FAILURES, {}, fetch="one") == (1,)
    assert User.objects.get(pk=user.pk).second_factor_failures == 5


def _run_through_django(statement, params):
    with connection.cursor() as cursor:  # gone when this returns, and with it the query it holds
        cursor.execute(statement, params)
        return cursor.fetchone()


@pytest.mark.django_db(transaction=True)
def test_no_statement_of_djangos_is_counted_or_kept_by_the_connection(user):
    """A bulk INSERT's text holds its values (Django binds on the client): psycopg must not keep it once it ran."""
    sql.execute(_FAILURES, {"n": 1, "id": user.pk})
    assert connection.connection.prepare_threshold is None  # set for identity.sql's statements only
    long_value = "x" * 4_000_000
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        assert _run_through_django("SELECT length(%s)", [long_value]) == (4_000_000,)
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 1_000_000


@pytest.mark.django_db
def test_after_a_database_error_in_a_transaction_postgresql_itself_refuses_the_next_statement(user):
    with transaction.atomic():
        with pytest.raises(IntegrityError):
            User.objects.create(username=user.username)  # Django marks the transaction for rollback
        with pytest.raises(DatabaseError) as refused:
            sql.execute(_FAILURES, {"n": 1, "id": user.pk})
    assert isinstance(refused.value.__cause__, psycopg.errors.InFailedSqlTransaction)
    assert User.objects.get(pk=user.pk).second_factor_failures == 0


@pytest.mark.django_db(transaction=True)
def test_a_statement_in_a_transaction_marked_for_rollback_is_rolled_back_with_it(user):
    with transaction.atomic():
        transaction.set_rollback(True)
        assert sql.execute(_FAILURES, {"n": 5, "id": user.pk}, fetch="one") == (user.pk,)
    assert User.objects.get(pk=user.pk).second_factor_failures == 0


@pytest.mark.django_db(transaction=True)
def test_the_captured_statements_are_djangos_and_these_in_the_order_they_ran_on_this_connection(user):
    def on_another_connection():
        try:
            sql.execute("SELECT 1", {})
        finally:
            connections.close_all()

    with CapturedStatements() as captured:
        assert User.objects.filter(pk=user.pk).exists()
        sql.execute(_FAILURES, {"n": 1, "id": user.pk})
        assert User.objects.filter(pk=user.pk).count() == 1
        other = threading.Thread(target=on_another_connection)
        other.start()
        other.join()
    statements = [query["sql"] for query in captured.captured_queries]
    assert len(captured) == len(statements) == 3
    assert ("LIMIT 1" in statements[0], statements[1], "COUNT(*)" in statements[2]) == (True, _FAILURES, True)
    sql.execute(_FAILURES, {"n": 2, "id": user.pk})  # after the block: not counted
    assert len(captured) == 3


def test_every_pinned_query_count_counts_identity_sqls_statements_too():
    """Django's and pytest-django's own query counters see only Django's queries; every test counts with
    testsupport.CapturedStatements (and the fixtures assert_num_statements, assert_max_num_statements)."""
    theirs = {"CaptureQueriesContext", "django_assert_num_queries", "django_assert_max_num_queries", "assertNumQueries"}

    def names(tree):  # every name the code uses or defines (words in strings and comments are not code)
        for node in ast.walk(tree):
            yield from (
                value for field in ("id", "attr", "arg", "name") if isinstance(value := getattr(node, field, None), str)
            )

    using = {path for path, tree in _our_trees().items() if theirs.intersection(names(tree))}
    assert using == {"testsupport.py"}
