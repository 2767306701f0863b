"""The desk's prefix search on the institution ID is served by identity 0015's unique index on UPPER(username)
(the same expression, with ``text_pattern_ops``): 0003's plain one goes, which every joiner would otherwise write
as well."""

from django.db import migrations

PLAIN = "helpdesk_user_upper_username"


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {PLAIN}")


def restore(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {PLAIN} ON identity_user (UPPER(username::text) text_pattern_ops)"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0005_approval_reasons"),
        ("identity", "0015_upper_username_unique"),
    ]

    operations = [migrations.RunPython(drop, restore)]
