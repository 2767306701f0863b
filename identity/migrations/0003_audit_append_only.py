"""On PostgreSQL the audit table refuses UPDATE, DELETE and TRUNCATE (AC-08).

TRUNCATE is let through only when the session sets ``enrollment.allow_audit_truncate``
to ``on``; the test suite sets it so Django can empty tables between
transactional tests. Production never does.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION identity_audit_refuse_change() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' AND current_setting('enrollment.allow_audit_truncate', true) = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'identity_auditevent is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER identity_auditevent_no_update_delete
    BEFORE UPDATE OR DELETE ON identity_auditevent
    FOR EACH ROW EXECUTE FUNCTION identity_audit_refuse_change();

CREATE TRIGGER identity_auditevent_no_truncate
    BEFORE TRUNCATE ON identity_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION identity_audit_refuse_change();
"""

DROP = """
DROP TRIGGER IF EXISTS identity_auditevent_no_truncate ON identity_auditevent;
DROP TRIGGER IF EXISTS identity_auditevent_no_update_delete ON identity_auditevent;
DROP FUNCTION IF EXISTS identity_audit_refuse_change();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP, params=None)


class Migration(migrations.Migration):
    dependencies = [("identity", "0002_roles")]

    operations = [migrations.RunPython(forwards, backwards)]
