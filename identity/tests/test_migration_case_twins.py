"""Migration identity 0015 (an institution ID held once whatever its case) stops, changing nothing, while two
accounts hold one ID in two cases, and names them; once one has an ID of its own, it builds the unique index."""

import pytest
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction

from testsupport import as_schema_owner, migrate_to, migrate_to_latest

BEFORE = [("identity", "0014_scim_vpn_member")]
AFTER = [("identity", "0015_upper_username_unique")]


@pytest.mark.django_db(transaction=True)
def test_case_twins_stop_the_migration_naming_them_and_it_runs_once_one_is_renamed():
    with as_schema_owner():
        apps = migrate_to(BEFORE)
        try:
            User = apps.get_model("identity", "User")
            first = User.objects.create(username="ABC1", password="!")
            User.objects.create(username="abc1", password="!")
            User.objects.create(username="other", password="!")

            with pytest.raises(CommandError) as refused:
                migrate_to(AFTER)
            assert "1 institution ID is held by more than one account" in str(refused.value)
            assert "'ABC1' and 'abc1'" in str(refused.value)
            assert "'other'" not in str(refused.value)
            User.objects.create(username="Abc1", password="!")  # nothing was changed: no unique index yet

            User.objects.filter(username__in=["abc1", "Abc1"]).delete()
            apps = migrate_to(AFTER)
            User = apps.get_model("identity", "User")
            with pytest.raises(IntegrityError), transaction.atomic():
                User.objects.create(username="aBc1", password="!")
            assert User.objects.get(username__iexact="abc1").pk == first.pk
        finally:
            migrate_to_latest()
