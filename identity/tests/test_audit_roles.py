"""The audit log holds against the database's own users: no session setting lets TRUNCATE through (AC-08)."""

from urllib.parse import quote

import psycopg
import pytest
from django.db import DatabaseError, connection, transaction

from identity import audit
from identity.db_roles import grant_app_role
from identity.models import AuditEvent
from testsupport import AUDIT_REFUSAL, OWNER_DATABASE_URL, owner_cursor

from .test_http_security import check_deploy

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def test_ac08_no_session_setting_turns_the_append_only_rule_off(user):
    audit.record("test.event", subject=user)

    with pytest.raises(DatabaseError) as refusal, transaction.atomic(), connection.cursor() as cursor:
        # A custom setting any session can set: the trigger must not obey it (migration identity 0005).
        cursor.execute("SET LOCAL enrollment.allow_audit_truncate = 'on'")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("TRUNCATE identity_auditevent")

    assert AUDIT_REFUSAL in str(refusal.value)
    assert AuditEvent.objects.count() == 1
    assert audit.verify_chain() is None


@pytest.mark.django_db(transaction=True)
def test_ac08_even_the_tables_owner_meets_the_trigger(user):
    """The owner has every privilege; the trigger still refuses, whatever the session sets."""
    audit.record("test.event", subject=user)
    for statement in (
        "UPDATE identity_auditevent SET action = 'x'",
        "DELETE FROM identity_auditevent",
        "SET enrollment.allow_audit_truncate = 'on'; TRUNCATE identity_auditevent CASCADE",
    ):
        with pytest.raises((DatabaseError, psycopg.Error)) as refusal, owner_cursor() as cursor:
            for part in statement.split("; "):
                cursor.execute(part)
        assert "append-only" in str(refusal.value), statement
    assert AuditEvent.objects.count() == 1
    assert audit.verify_chain() is None


# --- AC-10: the app's database role -----------------------------------------------------------------------------


@pytest.fixture
def app_role(transactional_db):
    """A login role granted as a deploy grants the app's role, and a connection to the test database as it."""
    from psycopg import sql

    settings_dict = connection.settings_dict
    app_kwargs = {"host": settings_dict["HOST"], "port": settings_dict["PORT"] or 5432, "dbname": settings_dict["NAME"]}
    if OWNER_DATABASE_URL:  # the suite runs as the app's role already, granted by the deploy's own steps
        with psycopg.connect(**app_kwargs, user=settings_dict["USER"]) as app:
            yield app
        return
    role = f"{settings_dict['NAME']}_app"[:63]
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
        if not cursor.fetchone():
            cursor.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)).as_string(cursor.connection))
    grant_app_role(connection, role)
    app = psycopg.connect(**app_kwargs, user=role)
    try:
        yield app
    finally:
        app.close()
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)).as_string(cursor.connection))
            cursor.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)).as_string(cursor.connection))


def _as_app(app, statement: str, params=()) -> str | None:
    """Run one statement as the app's role in a transaction that is rolled back; the refusal's message or None."""
    try:
        with app.transaction(force_rollback=True):
            app.execute(statement, params)
    except psycopg.Error as refusal:
        return str(refusal)
    return None


@pytest.mark.django_db(transaction=True)
def test_ac10_app_role_reads_and_appends_audit_rows_and_nothing_more(app_role, user):
    audit.record("test.event", subject=user)
    row = (2, "2026-01-01T00:00:00+00:00", "test.app_insert", "{}", "0" * 64, "1" * 64)
    insert = (
        "INSERT INTO identity_auditevent (sequence, created_at, action, details, prev_hash, hash)"
        " VALUES (%s, %s, %s, %s, %s, %s)"
    )

    assert _as_app(app_role, "SELECT count(*) FROM identity_auditevent") is None
    assert _as_app(app_role, insert, row) is None
    assert _as_app(app_role, "UPDATE identity_user SET department = department") is None  # its other tables: yes
    for statement in (
        "UPDATE identity_auditevent SET action = 'x'",
        "DELETE FROM identity_auditevent",
        "TRUNCATE identity_auditevent",
        "ALTER TABLE identity_auditevent DISABLE TRIGGER USER",
        "DROP TRIGGER identity_auditevent_no_update_delete ON identity_auditevent",
        "CREATE OR REPLACE FUNCTION identity_audit_refuse_change() RETURNS trigger AS $$ BEGIN RETURN NULL; END $$"
        " LANGUAGE plpgsql",
        "CREATE TABLE shadow (id int)",
        "ALTER TABLE identity_user ADD COLUMN x int",
        "SET session_replication_role = replica",
    ):
        refusal = _as_app(app_role, statement)
        assert refusal is not None, statement
        assert "permission denied" in refusal or "must be owner" in refusal, (statement, refusal)
    assert AuditEvent.objects.count() == 1
    assert audit.verify_chain() is None


def _url(user: str, password: str | None = None) -> str:
    db = connection.settings_dict
    credentials = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def test_ac_10_the_deploy_check_refuses_to_serve_as_the_owner_and_passes_the_app_role(app_role):
    db = connection.settings_dict
    owner_url = OWNER_DATABASE_URL or _url(db["USER"], db["PASSWORD"])
    app_url = _url(app_role.info.user, db["PASSWORD"] if OWNER_DATABASE_URL else None)

    as_owner = check_deploy(DATABASE_URL=owner_url)
    assert as_owner.returncode != 0
    refusals = [line for line in as_owner.stderr.splitlines() if "(identity.E106)" in line]
    assert refusals, as_owner.stdout + as_owner.stderr
    said = " ".join(refusals)
    assert "superuser" in said or ("owns" in said and "UPDATE, DELETE, TRUNCATE on the audit table" in said), said

    as_app = check_deploy(DATABASE_URL=app_url)
    assert as_app.returncode == 0, as_app.stdout + as_app.stderr
    assert "identity.E106" not in as_app.stdout + as_app.stderr
    assert "identity.I106" not in as_app.stdout + as_app.stderr  # the role was checked, not skipped


@pytest.mark.django_db(transaction=True)
def test_ac_10_a_postgresql_database_out_of_reach_fails_the_check_instead_of_skipping_it():
    result = check_deploy(DATABASE_URL="postgres://nobody@127.0.0.1:1/enrollment")
    assert result.returncode != 0
    assert "(identity.E106) Could not check the role the site connects as" in result.stderr, result.stderr
