"""The migration that turns a member's place in the reminders from a step number into a time."""

from datetime import UTC, datetime

import pytest
from django.utils import timezone

from testsupport import as_schema_owner, migrate_to, migrate_to_latest

BEFORE = [("campaigns", "0003_campaign_summary_week")]
AFTER = [("campaigns", "0004_member_reminded_at")]


@pytest.mark.django_db(transaction=True)
def test_steps_become_the_time_of_the_last_message(make_user):
    with as_schema_owner():
        _migrated_back_and_forth(make_user)


def _migrated_back_and_forth(make_user):
    apps = migrate_to(BEFORE)
    try:
        Campaign, Member = apps.get_model("campaigns", "Campaign"), apps.get_model("campaigns", "Member")
        start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
        campaign = Campaign.objects.create(
            name="Old", starts_at=start, deadline=datetime(2026, 3, 1, tzinfo=UTC), email_subject="s", email_text="t"
        )
        sent_at = datetime(2026, 2, 15, 9, 0, tzinfo=UTC)
        never, recorded, unrecorded = (make_user() for _ in range(3))
        for person, step, at in ((never, 0, None), (recorded, 3, sent_at), (unrecorded, 2, None)):
            Member.objects.create(
                campaign_id=campaign.pk, person_id=person.pk, added_at=start, last_step=step, last_step_at=at
            )
        before = timezone.now()
        apps = migrate_to(AFTER)
        Member = apps.get_model("campaigns", "Member")
        rows = dict(Member.objects.values_list("person_id", "last_reminded_at"))
        assert rows[never.pk] is None
        assert rows[recorded.pk] == sent_at
        assert rows[unrecorded.pk] >= before
        assert set(Member.objects.values_list("left_at", flat=True)) == {None}
    finally:
        migrate_to_latest()
