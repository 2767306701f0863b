"""Indexes for finding a caller among a million people (see bench/README.md, "admin.py").

On PostgreSQL only (SQLite, for development, has few rows). Each matches a query of ``helpdesk.selectors`` or the
people list exactly:
- names, ID and email by prefix, case-insensitive: ``UPPER(col::text) LIKE 'ABC%'`` (Django's ``istartswith``) uses
  a b-tree on ``UPPER(col::text)`` with ``text_pattern_ops``, which also serves ``iexact`` on the email. Prefix
  search is what a desk types (a surname, the start of an ID); a trigram index would also find infixes, at about
  three times the size and slower writes, so it is left out until someone needs "contains";
- phone numbers: registrations by E.164 number (current and retired alike);
- the department filter's choices, read by skipping through its index (a loose index scan), not a full DISTINCT;
- the person page's newest events of one person: ``(subject_id, sequence DESC)``.
"""

from django.db import migrations

INDEXES = {
    "helpdesk_user_upper_username": "identity_user (UPPER(username::text) text_pattern_ops)",
    "helpdesk_user_upper_first_name": "identity_user (UPPER(first_name::text) text_pattern_ops)",
    "helpdesk_user_upper_last_name": "identity_user (UPPER(last_name::text) text_pattern_ops)",
    "helpdesk_user_upper_email": "identity_user (UPPER(email::text) text_pattern_ops)",
    "helpdesk_user_department": "identity_user (department)",
    "helpdesk_registration_phone": "devices_registration (phone_number) WHERE phone_number <> ''",
    "helpdesk_auditevent_subject_seq": "identity_auditevent (subject_id, sequence DESC)",
}


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, definition in INDEXES.items():
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {definition}")


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("helpdesk", "0002_desk_roles"),
        ("devices", "0006_bypass_codes"),
        ("identity", "0004_lost_last_factor"),
    ]

    operations = [migrations.RunPython(create, drop)]
