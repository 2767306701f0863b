"""An institution ID is held once whatever its case: a unique index on UPPER(username), in place of the two plain
ones (helpdesk 0003's on PostgreSQL, with ``text_pattern_ops`` for the desk's prefix search, which the unique one
keeps; 0013's on the SQLite default). Checks alone let two creations at once in two cases both pass.

Existing case twins (e.g. "ABC1" and "abc1") stop the migration with a message: which of them keeps the ID is a
person's decision, not this migration's.
"""

from django.core.management.base import CommandError
from django.db import migrations, models
from django.db.models import Count
from django.db.models.functions import Upper

SHOWN = 10


def refuse_case_twins(apps, schema_editor):
    User = apps.get_model("identity", "User")
    twins = (
        User.objects.annotate(held=Upper("username"))
        .values("held")
        .annotate(accounts=Count("pk"))
        .filter(accounts__gt=1)
        .order_by("held")
    )
    found = list(twins.values_list("held", flat=True))
    if not found:
        return
    names = []
    for held in found[:SHOWN]:
        spellings = User.objects.annotate(held=Upper("username")).filter(held=held).order_by("pk")
        names.append(" and ".join(repr(name) for name in spellings.values_list("username", flat=True)))
    more = f", and {len(found) - SHOWN} more" if len(found) > SHOWN else ""
    held = "1 institution ID is" if len(found) == 1 else f"{len(found)} institution IDs are"
    raise CommandError(
        f"{held} held by more than one account, in different cases: {'; '.join(names)}{more}. An institution ID is "
        "to be held once whatever its case, and which account keeps it is not for a migration to decide: nothing "
        "was changed. Give all but one of each an ID of its own (the admin's person page, or manage.py shell), "
        "then run migrate again. The accounts to look at are those whose UPPER(username) appears more than once "
        "in identity_user."
    )


def drop_plain_index(apps, schema_editor):
    # 0013 gave the SQLite default a plain index of this name; the unique one below takes its place. PostgreSQL's
    # plain one is helpdesk's (dropped by helpdesk 0006, once this one is built).
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS identity_user_upper_username")


def build_unique_index(apps, schema_editor):
    # On PostgreSQL with text_pattern_ops, so that the desk's prefix search (LIKE 'ABC%') is served by it as well as
    # "=": Django's constraint has no operator class the SQLite default could also take, so the state says the
    # constraint and this builds it.
    pattern_ops = " text_pattern_ops" if schema_editor.connection.vendor == "postgresql" else ""
    schema_editor.execute(
        f"CREATE UNIQUE INDEX identity_user_upper_username ON identity_user (UPPER(username){pattern_ops})"
    )


def drop_unique_index(apps, schema_editor):
    schema_editor.execute("DROP INDEX identity_user_upper_username")


def restore_plain_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        schema_editor.execute(
            "CREATE INDEX IF NOT EXISTS identity_user_upper_username ON identity_user (UPPER(username))"
        )


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("identity", "0014_scim_vpn_member"),
    ]

    operations = [
        migrations.RunPython(refuse_case_twins, migrations.RunPython.noop),
        migrations.RunPython(drop_plain_index, restore_plain_index),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddConstraint(
                    model_name="user",
                    constraint=models.UniqueConstraint(
                        Upper("username"),
                        name="identity_user_upper_username",
                        violation_error_message="This institution ID is held here already, in another case.",
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(build_unique_index, drop_unique_index)],
        ),
    ]
