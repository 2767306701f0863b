"""The rule for "enrolled" as a view: the registrations in use whose factor is confirmed, one row each, with the
person, the kind, the strongest confirmed factor and when it was activated.

``devices.selectors`` reads it through the unmanaged ``WorkingRegistration`` model (one ``EXISTS``), the reports'
SQL joins it: the rule is written here only. The same statement runs on PostgreSQL and SQLite. A boolean is 0 or 1
in SQLite, and a NULL from a missing device is neither true nor false in both, so a registration without that
factor falls through the ``CASE`` and the ``OR``.

PostgreSQL refuses to change the type of a column a view reads, or to drop it; a later migration that does must
drop the view first and create it again after (with the same rule, or a changed one here only).
"""

import django.db.models.deletion
from django.db import migrations, models

# The statuses are Registration.IN_USE; the numbers WorkingRegistration.Strength.
CREATE = """
CREATE VIEW devices_working_registration AS
SELECT r.id, r.user_id, r.kind, r.activated_at,
       CASE WHEN sk.confirmed THEN 3 WHEN app.confirmed THEN 2 ELSE 1 END AS strength
FROM devices_registration r
LEFT JOIN devices_authenticatorappdevice app ON app.id = r.app_device_id
LEFT JOIN devices_phonedevice ph ON ph.id = r.phone_device_id
LEFT JOIN devices_securitykeydevice sk ON sk.id = r.security_key_device_id
WHERE r.status IN ('active', 'reactivating') AND (sk.confirmed OR app.confirmed OR ph.confirmed)
"""

DROP = "DROP VIEW IF EXISTS devices_working_registration"


class Migration(migrations.Migration):
    dependencies = [("devices", "0011_webauthn_challenge_address")]

    operations = [
        migrations.RunSQL(CREATE, DROP),
        migrations.CreateModel(
            name="WorkingRegistration",
            fields=[
                (
                    "registration",
                    models.OneToOneField(
                        db_column="id",
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to="devices.registration",
                    ),
                ),
                ("kind", models.CharField(max_length=16)),
                ("strength", models.PositiveSmallIntegerField()),
                ("activated_at", models.DateTimeField(null=True)),
            ],
            options={"verbose_name": "working device", "db_table": "devices_working_registration", "managed": False},
        ),
    ]
