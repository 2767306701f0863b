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


# What the role this connection serves as could do to the audit log beyond reading and appending (AC-10): as a
# superuser, as (or able to become) the owner of any table, or by a privilege on the audit table itself.
_ROLE_REPORT = """
SELECT current_user,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
       ARRAY(SELECT format('%%I.%%I', n.nspname, c.relname)
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%%'
               AND pg_has_role(current_user, c.relowner, 'MEMBER')
             ORDER BY 1),
       to_regclass(%(audit)s) IS NOT NULL,
       ARRAY(SELECT privilege FROM unnest(ARRAY['UPDATE', 'DELETE', 'TRUNCATE']) AS privilege
             WHERE to_regclass(%(audit)s) IS NOT NULL AND has_table_privilege(current_user, %(audit)s, privilege)),
       has_schema_privilege(current_user, 'public', 'CREATE')
"""


def role_problems(connection) -> list[str]:
    """What is wrong with serving as the role ``connection`` (a Django PostgreSQL connection) logs in as (AC-10);
    empty when it owns nothing, cannot create in the schema and may only read and append audit rows. Reads only."""
    with connection.cursor() as cursor:
        cursor.execute(_ROLE_REPORT, {"audit": AUDIT_TABLE})
        role, superuser, owned, audit_exists, privileges, may_create = cursor.fetchone()
    problems = []
    if superuser:
        problems.append(f"The site connects as {role}, a superuser: it can turn off the audit log's triggers.")
    elif owned:
        shown = ", ".join(owned[:3]) + (f" and {len(owned) - 3} more" if len(owned) > 3 else "")
        problems.append(
            f"The site connects as {role}, which owns {len(owned)} tables, sequences or views ({shown}): an owner "
            "can change the schema and disable the audit log's triggers."
        )
    if not audit_exists:
        problems.append(f"There is no audit table {AUDIT_TABLE} to check: migrate first, as the owner role.")
    elif privileges:
        problems.append(f"The site's role {role} has {', '.join(privileges)} on the audit table {AUDIT_TABLE}.")
    if may_create and not superuser:
        problems.append(f"The site's role {role} may create objects in the public schema (a table, a trigger).")
    return problems
