"""The audit chain's head, read under the chain's lock in one round trip.

Every append takes the chain's advisory lock, then reads the last row to link to. As two statements that is two round
trips per audited event, and every sign-in and VPN check appends one while the lock is held. In a VOLATILE function
each statement takes a fresh snapshot, so the read after the lock sees the row the previous holder committed: the
same guarantee as two statements, in one. ``identity.audit`` calls it on PostgreSQL.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION identity_audit_chain_head(OUT head_sequence bigint, OUT head_hash varchar)
RETURNS SETOF record AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1096107081);  -- 0x41554449, the chain's lock since 0003
    RETURN QUERY SELECT sequence::bigint, hash FROM identity_auditevent ORDER BY sequence DESC LIMIT 1;
END;
$$ LANGUAGE plpgsql VOLATILE;
"""

DROP = "DROP FUNCTION IF EXISTS identity_audit_chain_head()"


def on_postgresql(statement: str):
    """A migration step that runs ``statement`` on PostgreSQL and does nothing elsewhere (SQLite has no functions)."""

    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(statement, params=None)

    return run


class Migration(migrations.Migration):
    dependencies = [("identity", "0006_person_sessions")]

    operations = [migrations.RunPython(on_postgresql(CREATE), on_postgresql(DROP))]
