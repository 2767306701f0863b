"""Keeping times: expired challenges, old phone codes and finished messages are deleted; nothing still owed is."""

from datetime import timedelta

import pytest
from django.utils import timezone

from devices import outbox, retention, services
from devices.models import OutboundMessage, PhoneVerification, WebAuthnChallenge
from devices.tasks import purge_expired_records
from devices.webauthn import issue_challenge

from .helpers import events

pytestmark = pytest.mark.django_db

NUMBER = "+16175550166"
Status = OutboundMessage.Status


def phone_code(person):
    registration = services.start_enrollment(person, kind="landline", verified_at=timezone.now())
    registration = services.set_phone_number(
        registration, phone_number=NUMBER, actor=person, verified_at=timezone.now()
    )
    return services.send_phone_code(registration, channel="voice", actor=person)


def email(person, status):
    message = outbox.queue_email(
        user=person, to=person.email, subject="Notice", body="A device was added", template="t", holds_secret=False
    )
    OutboundMessage.objects.filter(pk=message.pk).update(status=status)
    return message


def challenge(person):
    return issue_challenge(person, ceremony=WebAuthnChallenge.Ceremony.AUTHENTICATE, session_key="s" * 32)


def test_each_kind_goes_after_its_own_keeping_time_and_not_before(person, make_user, clock, settings):
    settings.OUTBOX_RETENTION_DAYS = 90
    settings.PHONE_CODE_RETENTION_DAYS = 30
    # Someone who never comes back: a person's own old challenges also go when they start a new ceremony.
    old_code = phone_code(person)
    challenge(make_user("gone"))
    OutboundMessage.objects.filter(pk=old_code.message_id).update(status=Status.SENT)
    old_sent, old_failed, old_queued = (
        email(person, Status.SENT),
        email(person, Status.FAILED),
        email(person, Status.QUEUED),
    )
    clock.tick(timedelta(days=31).total_seconds())
    newer_code, newer_challenge = phone_code(person), challenge(person)

    assert retention.purge_expired_records() == {
        "webauthn_challenges": 1,
        "phone_verifications": 1,
        "outbound_messages": 0,
    }
    assert set(PhoneVerification.objects.values_list("pk", flat=True)) == {newer_code.pk}
    assert set(WebAuthnChallenge.objects.values_list("pk", flat=True)) == {newer_challenge.pk}
    # The deleted code's own message stays until the outbox's keeping time; it only loses its link.
    assert OutboundMessage.objects.filter(pk=old_code.message_id).exists()

    clock.tick(timedelta(days=60).total_seconds())
    purged = retention.purge_expired_records()

    assert purged["outbound_messages"] == 3  # two finished emails and the first code's call
    left = set(OutboundMessage.objects.values_list("pk", flat=True))
    assert old_queued.pk in left and not {old_sent.pk, old_failed.pk, old_code.message_id} & left


def test_a_phone_code_outlives_a_shorter_setting_until_the_send_limits_no_longer_count_it(person, clock, settings):
    settings.PHONE_CODE_RETENTION_DAYS = 0
    code = phone_code(person)
    clock.tick(timedelta(hours=23).total_seconds())
    assert retention.purge_expired_records()["phone_verifications"] == 0
    clock.tick(timedelta(hours=2).total_seconds())
    assert retention.purge_expired_records()["phone_verifications"] == 1
    assert not PhoneVerification.objects.filter(pk=code.pk).exists()


def test_a_purge_is_audited_with_its_counts_and_running_it_again_does_nothing(person, clock, settings):
    settings.PHONE_CODE_RETENTION_DAYS = 30
    phone_code(person)
    clock.tick(timedelta(days=31).total_seconds())

    purge_expired_records.apply()
    purge_expired_records.apply()

    audited = events("retention.purged")
    assert audited.count() == 1
    assert audited.get().details == {"webauthn_challenges": 0, "phone_verifications": 1, "outbound_messages": 0}
    assert not PhoneVerification.objects.exists()


def test_rows_are_deleted_in_batches_until_none_is_left(person):
    for _ in range(5):
        email(person, Status.SENT)
    assert retention._delete(OutboundMessage.objects.filter(status=Status.SENT), batch=2) == 5
    assert not OutboundMessage.objects.exists()
