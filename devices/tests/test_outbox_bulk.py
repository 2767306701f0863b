"""The outbox's bulk lanes: a campaign's thousands of messages never stand in front of a sign-in code."""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices import outbox
from devices.metrics import OutboxCollector
from devices.models import OutboundMessage
from devices.selectors import oldest_queued_message_at

pytestmark = pytest.mark.django_db


def test_bulk_messages_go_to_their_own_queues(monkeypatch, make_user, django_capture_on_commit_callbacks, settings):
    published = []
    monkeypatch.setattr(outbox, "dispatch_batch", lambda rows: published.extend(rows) or len(rows))
    person = make_user()
    with django_capture_on_commit_callbacks(execute=True):
        rows = outbox.queue_bulk(
            [
                {"user_id": person.pk, "channel": "email", "recipient": person.email, "template": "t:x", "body": "b"},
                {"user_id": person.pk, "channel": "sms", "recipient": "+16175550142", "template": "t:x", "body": "b"},
            ]
        )
        code = outbox.queue_phone_message(
            user=person,
            channel="sms",
            number="+16175550142",
            body="Your code is 123456",
            template="phone_code",
            expires_at=timezone.now() + timedelta(minutes=10),
        )
    lanes = {pk: lane for pk, lane, _attempts in published}
    assert lanes == {rows[0].pk: "bulk-email", rows[1].pk: "bulk-sms", code.pk: "sms"}
    assert {settings.OUTBOX_QUEUES[lane] for lane in lanes.values()} == {"bulk-email", "bulk-sms", "sms"}
    assert all(row.bulk and not row.holds_secret for row in rows)


def test_waiting_bulk_messages_are_not_a_stuck_outbox(make_user):
    # Thousands of reminders waiting their turn is normal: /readyz and the OutboxStuck alert look at the others.
    old = timezone.now() - timedelta(hours=2)
    bulk = OutboundMessage.objects.create(channel="email", recipient="a@example.edu", template="t:x", bulk=True)
    OutboundMessage.objects.filter(pk=bulk.pk).update(created_at=old)
    assert oldest_queued_message_at() is None
    families = {family.name: family for family in OutboxCollector().collect()}
    ages = {
        sample.labels["channel"]: sample.value
        for sample in families["enrollment_outbox_oldest_queued_age_seconds"].samples
    }
    counts = {
        (s.labels["channel"], s.labels["status"]): s.value for s in families["enrollment_outbox_messages"].samples
    }
    assert ages["email"] == 0.0 and counts[("email", "queued")] == 1
    assert outbox.bulk_backlog() == 1
