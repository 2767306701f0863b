"""The database role the app serves as (AC-10): it reads and writes its tables, but may only read and append to the
audit log, and owns nothing, so it can neither change the schema nor disable the audit table's triggers.

Migrations run as a separate owner role. After they do, the owner grants the app role what it needs: that is
:func:`grant_app_role`, run after every ``migrate`` when ``DATABASE_APP_ROLE`` names the app's role.
"""

from psycopg import sql

AUDIT_TABLE = "identity_auditevent"


def grant_app_role(connection, role: str) -> None:
    """Grant ``role`` read and write on every table of the schema, but only SELECT and INSERT on the audit log.

    Runs as the tables' owner (the migrations role); idempotent. Nothing is audited: it is the deploy's own step.
    """
    name = sql.Identifier(role)
    statements = [
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(name),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(name),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(name),
        sql.SQL("REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON {} FROM {}").format(
            sql.Identifier(AUDIT_TABLE), name
        ),
        # Creating objects would let the role shadow a table or add a trigger of its own.
        sql.SQL("REVOKE CREATE ON SCHEMA public FROM {}").format(name),
    ]
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement.as_string(cursor.connection))


def grant_after_migrate(sender, using="default", **kwargs) -> None:
    """``post_migrate`` receiver: re-grant the app role after the owner migrated, so new tables are covered."""
    from django.conf import settings
    from django.db import connections

    connection = connections[using]
    if settings.DATABASE_APP_ROLE and connection.vendor == "postgresql":
        grant_app_role(connection, settings.DATABASE_APP_ROLE)
