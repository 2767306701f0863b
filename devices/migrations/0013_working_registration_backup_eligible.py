"""The rule's view gains a column, ``backup_eligible``: whether the registration's credential may be synced to the
person's other devices (WA-04), so the assurance counts tell synced passkeys from those bound to one device without
joining the registrations and the keys a second time. The rule for "enrolled" is the one of migration 0012,
unchanged: the same rows, the same strength.

WebAuthn's backup eligibility, not its backed-up state: a credential that may be synced can be synced later without
the site hearing of it, so only one that may not counts as bound to its device. False for a device that is no
WebAuthn credential. A column is added at the end of a view only by creating it again, on PostgreSQL and SQLite alike.
"""

from importlib import import_module

from django.db import migrations, models

# The statuses are Registration.IN_USE; the numbers WorkingRegistration.Strength.
CREATE = """
CREATE VIEW devices_working_registration AS
SELECT r.id, r.user_id, r.kind, r.activated_at,
       CASE WHEN sk.confirmed THEN 3 WHEN app.confirmed THEN 2 ELSE 1 END AS strength,
       COALESCE(sk.backup_eligible, FALSE) AS backup_eligible
FROM devices_registration r
LEFT JOIN devices_authenticatorappdevice app ON app.id = r.app_device_id
LEFT JOIN devices_phonedevice ph ON ph.id = r.phone_device_id
LEFT JOIN devices_securitykeydevice sk ON sk.id = r.security_key_device_id
WHERE r.status IN ('active', 'reactivating') AND (sk.confirmed OR app.confirmed OR ph.confirmed)
"""

# Back to migration 0012's view, as that migration wrote it.
PREVIOUS = import_module("devices.migrations.0012_working_registration_view").CREATE

DROP = "DROP VIEW IF EXISTS devices_working_registration"


class Migration(migrations.Migration):
    dependencies = [("devices", "0012_working_registration_view")]

    operations = [
        migrations.RunSQL([DROP, CREATE], [DROP, PREVIOUS]),
        # The model is unmanaged: this changes Django's picture of the view only, never the database.
        migrations.AddField(
            model_name="workingregistration",
            name="backup_eligible",
            field=models.BooleanField(),
        ),
    ]
