"""Fewer indexes to write: every audit event and every person pays for each one.

- The audit log's ``subject_id`` index goes: helpdesk 0003's ``(subject_id, sequence DESC)`` leads with it. The
  actor's is kept where there is an actor (most events, the VPN check's and the sync's, have none). The action's two
  b-trees (one for "=", Django's ``_like`` for prefixes) become one with ``varchar_pattern_ops``, which serves both.
- The people's ``vpn_access_changed_by_id`` index is kept where it is set. Django's ``_like`` index on
  ``username`` goes: nothing searches the institution ID by a case-sensitive prefix (the desk's search is
  case-insensitive, on helpdesk 0003's ``UPPER(username)`` index), and the unique index serves "=".
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

USERNAME_LIKE = (
    "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'identity_user' "
    "AND indexdef LIKE '%%(username varchar_pattern_ops)'"
)


def drop_username_like(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(USERNAME_LIKE)
        names = [name for (name,) in cursor.fetchall()]
    for name in names:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


# What helpdesk 0003 gives PostgreSQL, for the embedded SQLite default: the audit log read by subject (the person
# page, the desk's "acted since" guard) and the institution ID held whatever its case.
ELSEWHERE = {
    "identity_auditevent_subject_seq": "identity_auditevent (subject_id, sequence DESC)",
    "identity_user_upper_username": "identity_user (UPPER(username))",
}


def index_elsewhere(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        return
    for name, definition in ELSEWHERE.items():
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {definition}")


def unindex_elsewhere(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        return
    for name in ELSEWHERE:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


def restore_username_like(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(
        "CREATE INDEX IF NOT EXISTS identity_user_username_e9275a70_like ON identity_user (username varchar_pattern_ops)"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("identity", "0012_audit_append_many"),
    ]

    operations = [
        migrations.AlterField(
            model_name="auditevent",
            name="action",
            field=models.CharField(max_length=64),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="actor",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="auditevent",
            name="subject",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="audit_events",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AlterField(
            model_name="user",
            name="vpn_access_changed_by",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(fields=["action"], name="identity_audit_action", opclasses=["varchar_pattern_ops"]),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(
                condition=models.Q(("actor__isnull", False)), fields=["actor"], name="identity_audit_actor"
            ),
        ),
        migrations.AddIndex(
            model_name="user",
            index=models.Index(
                condition=models.Q(("vpn_access_changed_by__isnull", False)),
                fields=["vpn_access_changed_by"],
                name="identity_user_vpn_changed_by",
            ),
        ),
        migrations.RunPython(drop_username_like, restore_username_like),
        migrations.RunPython(index_elsewhere, unindex_elsewhere),
    ]
