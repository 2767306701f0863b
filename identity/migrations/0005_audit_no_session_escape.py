"""The audit table's trigger refuses TRUNCATE for every session (AC-08).

0003 let TRUNCATE through when a session set ``enrollment.allow_audit_truncate``,
which any session can set. Now nothing a session sets turns the rule off; only
the table's owner (the migrations role, never the app's, AC-10) can disable the
trigger, as the test suite does to empty its tables.
"""

from django.db import migrations

REFUSE_ALWAYS = """
CREATE OR REPLACE FUNCTION identity_audit_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'identity_auditevent is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""

WITH_SESSION_ESCAPE = """
CREATE OR REPLACE FUNCTION identity_audit_refuse_change() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' AND current_setting('enrollment.allow_audit_truncate', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'identity_auditevent is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(REFUSE_ALWAYS, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(WITH_SESSION_ESCAPE, params=None)


class Migration(migrations.Migration):
    dependencies = [("identity", "0004_lost_last_factor")]

    operations = [migrations.RunPython(forwards, backwards)]
