"""Prepared statements on the hot paths, and the request transaction whose last statement may commit it."""

import pytest
from django.db import DatabaseError, connection, transaction

from identity import sql
from identity.models import User

pytestmark = pytest.mark.postgres

_FAILURES = f"UPDATE {User._meta.db_table} SET second_factor_failures = %(n)s WHERE id = %(id)s RETURNING id"  # noqa: S608


class AnswerFailed(Exception):
    pass


def _failures(user) -> int:
    return User.objects.values_list("second_factor_failures", flat=True).get(pk=user.pk)


@pytest.mark.django_db(transaction=True)
def test_the_last_statement_of_an_outermost_request_transaction_commits_it(user):
    hooks = []
    with pytest.raises(AnswerFailed), sql.request_transaction():
        transaction.on_commit(lambda: hooks.append("before"))
        assert sql.execute_and_commit(_FAILURES, {"n": 3, "id": user.pk}, fetch="one") == (user.pk,)
        raise AnswerFailed  # what comes after cannot undo what that statement committed
    assert _failures(user) == 3
    assert hooks == []  # the block ended in an error: Django drops its hooks, as for any rolled-back block

    with sql.request_transaction():
        transaction.on_commit(lambda: hooks.append("ran"))
        sql.execute_and_commit(_FAILURES, {"n": 4, "id": user.pk})
        assert connection.connection.info.transaction_status == 0  # idle: committed, nothing pending
    assert hooks == ["ran"]
    assert _failures(user) == 4
    assert not connection.in_atomic_block and connection.get_autocommit()


@pytest.mark.django_db(transaction=True)
def test_inside_another_block_the_outer_block_decides(user):
    with pytest.raises(AnswerFailed), transaction.atomic():
        with sql.request_transaction():
            sql.execute_and_commit(_FAILURES, {"n": 5, "id": user.pk})
        raise AnswerFailed
    assert _failures(user) == 0
    with pytest.raises(AnswerFailed), transaction.atomic():  # not a request transaction: a plain execute
        sql.execute_and_commit(_FAILURES, {"n": 6, "id": user.pk})
        raise AnswerFailed
    assert _failures(user) == 0


@pytest.mark.django_db(transaction=True)
def test_a_failing_last_statement_commits_nothing_and_leaves_the_connection_usable(user):
    with pytest.raises(DatabaseError), sql.request_transaction():
        sql.execute(_FAILURES, {"n": 7, "id": user.pk})
        sql.execute_and_commit("SELECT 1 / %(zero)s", {"zero": 0}, fetch="one")
    assert _failures(user) == 0
    with sql.request_transaction():
        assert sql.execute_and_commit(_FAILURES, {"n": 8, "id": user.pk}, fetch="one") == (user.pk,)
    assert _failures(user) == 8


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_request_leaves_the_next_one_on_the_same_connection_working(user):
    """psycopg deallocates every prepared statement after a rollback: nothing here may depend on one surviving."""
    for n in (1, 2):
        with pytest.raises(AnswerFailed), sql.request_transaction():
            sql.execute(_FAILURES, {"n": 10 + n, "id": user.pk}, fetch="one")  # prepared by psycopg
            raise AnswerFailed
        with sql.request_transaction():
            sql.execute(_FAILURES, {"n": 20 + n, "id": user.pk}, fetch="one")
            assert sql.execute_and_commit(_FAILURES, {"n": n, "id": user.pk}, fetch="one") == (user.pk,)
        assert _failures(user) == n


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("text", ["it's", "'); DROP TABLE identity_user; --", "back\\slash $1 %s", "Zoë 李"])
def test_values_sent_with_the_commit_arrive_as_they_were(text):
    with sql.request_transaction():
        assert sql.execute_and_commit("SELECT %(text)s::text, %(text)s::text", {"text": text}, fetch="one") == (
            text,
            text,
        )
    assert User._meta.db_table in connection.introspection.table_names()


@pytest.mark.django_db(transaction=True)
def test_a_statement_queued_for_the_commit_goes_first_and_its_error_keeps_nothing(user):
    with transaction.atomic():
        assert sql.at_commit(_FAILURES, {"n": 1, "id": user.pk}) is False  # not a request transaction: run it yourself
    with sql.request_transaction():
        assert sql.at_commit(_FAILURES, {"n": 2, "id": user.pk}) is True
        assert _failures(user) == 0  # queued, not sent
    assert _failures(user) == 2  # ran as the block ended
    with pytest.raises(DatabaseError), sql.request_transaction():
        sql.at_commit("SELECT 1 / %(zero)s", {"zero": 0})
        sql.execute_and_commit(_FAILURES, {"n": 3, "id": user.pk})
    assert _failures(user) == 2
    with sql.request_transaction():
        sql.at_commit(_FAILURES, {"n": 4, "id": user.pk})
        assert sql.execute_and_commit("SELECT %(n)s::int", {"n": 5}, fetch="one") == (5,)  # its own result
    assert _failures(user) == 4
