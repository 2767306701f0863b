"""What the test suite pays between transactional tests: reloading every migrated row, or letting the flush re-create
content types and permissions and putting the role groups back.

After a transactional test Django empties every table. Marked ``serialized_rollback``, such a test's flush skips
post_migrate and the next test reloads the serialized rows (content types, permissions, role groups). Unmarked, as the
suite runs them, the flush's post_migrate re-creates content types and permissions and the root ``conftest.py`` puts
the groups back. Both are timed here in the same run, alternating, on a migrated database:

    DATABASE_URL=postgres://OWNER@127.0.0.1:5432/A_MIGRATED_TEST_DATABASE python bench/test_reset.py [--runs 9]

The database is emptied and left with only what the migrations made: never point it at one that holds data.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import os  # noqa: E402

import django  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

django.setup()

from django.apps import apps  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.core import serializers  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models.signals import post_migrate  # noqa: E402

from testsupport import flush_statements  # noqa: E402


def flush(inhibit_post_migrate: bool, deletes: bool) -> None:
    """Django's flush, its statements as Django writes them (TRUNCATE) or as the suite runs them (DELETE)."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    original = DatabaseOperations.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        statements = flush_statements(sql_list)
        if not deletes:
            statements = [s for s in statements if not s.startswith(("DELETE", "SET CONSTRAINTS"))]
            statements.insert(-1, next(s for s in sql_list if s.startswith("TRUNCATE")))
        return original(self, statements)

    DatabaseOperations.execute_sql_flush = execute_sql_flush
    try:
        call_command("flush", verbosity=0, interactive=False, inhibit_post_migrate=inhibit_post_migrate)
    finally:
        DatabaseOperations.execute_sql_flush = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("needs DATABASE_URL=postgres://... (the owner of a migrated test database)")
    everything = connection.creation.serialize_db_to_string()
    roles = serializers.serialize(
        "json", Group.objects.all(), use_natural_foreign_keys=True, use_natural_primary_keys=True
    )

    def restore(**kwargs):
        for role in serializers.deserialize("json", roles):
            role.save()

    last_app = [config for config in apps.get_app_configs() if config.models_module is not None][-1]
    variants = {
        "serialized rollback (TRUNCATE)": (True, False),
        "post_migrate and the groups (TRUNCATE)": (False, False),
        "post_migrate and the groups (DELETE)": (False, True),
        "serialized rollback (DELETE)": (True, True),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.runs):
        for name, (serialized, deletes) in variants.items():
            if not serialized:
                post_migrate.connect(restore, sender=last_app, dispatch_uid="bench-restore-roles")
            started = time.perf_counter()
            flush(inhibit_post_migrate=serialized, deletes=deletes)
            if serialized:
                connection.creation.deserialize_db_from_string(everything)
            times[name].append(time.perf_counter() - started)
            post_migrate.disconnect(sender=last_app, dispatch_uid="bench-restore-roles")
            assert Group.objects.count() == len(list(serializers.deserialize("json", roles)))
    base = times["serialized rollback (TRUNCATE)"]
    for name, values in times.items():
        ratios = [value / b for value, b in zip(values, base, strict=True)]
        print(
            f"{name:40} median {statistics.median(values) * 1000:7.1f} ms "
            f"(range {min(values) * 1000:.1f}-{max(values) * 1000:.1f}); "
            f"ratio to serialized rollback, median {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
        )


if __name__ == "__main__":
    main()
