"""In-process rules for a lost answer (REL-02, REL-04) and for the sweep's spacing of re-dispatches (REL-03)."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from freezegun import freeze_time

from devices import outbox
from devices.gateways import UnknownOutcomeError
from devices.models import OutboundMessage
from devices.tests.fakes import RecordingGateway

Status = OutboundMessage.Status


class LosingGateway(RecordingGateway):
    """Takes the text and loses the answer the first ``lose`` times; ``find_sent`` looks in what it took."""

    lose = 0
    lookups: list = []
    lookup_fails = False

    def send_sms(self, number, text):
        sid = super().send_sms(number, text)
        if LosingGateway.lose:
            LosingGateway.lose -= 1
            raise UnknownOutcomeError("ReadTimeout")
        return sid

    def find_sent(self, channel, number, text, since):
        LosingGateway.lookups.append((channel, number, since))
        if LosingGateway.lookup_fails:
            from devices.gateways import TransientGatewayError

            raise TransientGatewayError("could not ask the provider")
        taken = [d for d in RecordingGateway.delivered if (d.channel, d.number, d.text) == (channel, number, text)]
        return "found-sid" if taken else None


@pytest.fixture
def gateway(recording_gateway, settings):
    """The shared recording gateway, losing answers as a test scripts it."""
    settings.PHONE_GATEWAY = "devices.tests.test_outbox_unknown_outcome.LosingGateway"
    settings.OUTBOX_BACKOFF_BASE_SECONDS = 0
    LosingGateway.lose, LosingGateway.lookups, LosingGateway.lookup_fails = 0, [], False
    return LosingGateway


@pytest.fixture
def undispatched(monkeypatch):
    dispatched = []
    monkeypatch.setattr(outbox, "dispatch_batch", lambda rows: dispatched.extend(row[:2] for row in rows) or len(rows))
    return dispatched


def queued_text(user, *, number="+16175550123", body="123456 is your code"):
    return outbox.queue_phone_message(
        user=user,
        channel="sms",
        number=number,
        body=body,
        template="test",
        expires_at=timezone.now() + timedelta(minutes=10),
    )


def test_rel02_a_lost_answer_is_resolved_with_the_provider_not_sent_again(user, gateway, undispatched):
    gateway.lose = 1
    message = queued_text(user)

    first = outbox.deliver_message(message.pk)

    assert first.retry_in is not None  # tried again later, not now
    message.refresh_from_db()
    assert message.status == Status.QUEUED and message.unknown_outcome_at is not None
    assert message.last_error.startswith("outcome unknown")
    second = outbox.deliver_message(message.pk)
    assert second.retry_in is None
    message.refresh_from_db()
    # The provider had it: recorded as sent with its id, and the code went out once.
    assert (message.status, message.provider_id, message.unknown_outcome_at) == (Status.SENT, "found-sid", None)
    assert len(RecordingGateway.delivered) == 1 and len(gateway.lookups) == 1
    assert message.encrypted_body == ""


def test_rel04_a_lost_answer_the_provider_does_not_have_is_sent_again_once(user, gateway, undispatched):
    gateway.lose = 1
    message = queued_text(user)
    outbox.deliver_message(message.pk)
    RecordingGateway.delivered.clear()  # the provider lost it after all

    outbox.deliver_message(message.pk)

    message.refresh_from_db()
    assert message.status == Status.SENT and message.attempts == 2
    assert len(RecordingGateway.delivered) == 1 and len(gateway.lookups) == 1


def test_rel04_when_the_provider_cannot_be_asked_nothing_is_sent_and_it_ends_failed(user, gateway, settings):
    settings.OUTBOX_MAX_ATTEMPTS = 3
    gateway.lose, gateway.lookup_fails = 1, True
    message = queued_text(user)
    outbox.deliver_message(message.pk)

    while outbox.deliver_message(message.pk).retry_in is not None:
        pass

    message.refresh_from_db()
    assert (message.status, message.attempts, message.encrypted_body) == (Status.FAILED, 3, "")
    assert len(RecordingGateway.delivered) == 1 and len(gateway.lookups) == 2


def test_rel02_an_emailed_link_whose_answer_was_lost_is_not_mailed_again(user, settings, monkeypatch):
    message = outbox.queue_email(
        user=user, to=user.email, subject="Link", body="https://x/activate/t/", template="t", holds_secret=True
    )

    def lose_answer(self, *args, **kwargs):
        raise TimeoutError("timed out")

    monkeypatch.setattr("django.core.mail.EmailMessage.send", lose_answer)
    assert outbox.deliver_message(message.pk).retry_in is None

    message.refresh_from_db()
    assert message.status == Status.FAILED and message.encrypted_body == ""
    assert message.last_error.startswith("outcome unknown")
    assert mail.outbox == []


def test_rel03_the_sweep_spaces_re_dispatches_out_so_an_outage_does_not_grow_the_queue(user, settings, undispatched):
    # The worker is down: nothing consumes, the sweep runs every 30 s for an hour.
    settings.OUTBOX_SWEEP_GRACE_SECONDS = 30
    settings.OUTBOX_SWEEP_MAX_BACKOFF_SECONDS = 960
    start = timezone.now()
    backlog = [queued_text(user, number=f"+161755501{n:02d}") for n in range(5)]
    for message in backlog:
        OutboundMessage.objects.filter(pk=message.pk).update(expires_at=None)  # emails wait as long as it takes

    for sweep in range(1, 121):
        with freeze_time(start + timedelta(seconds=30 * sweep)):
            outbox.redispatch_stale()

    copies = {message.pk: sum(1 for pk, _ in undispatched if pk == message.pk) for message in backlog}
    # Twice as long each time, from 30 s up to 16 minutes: at 30, 90, 210, 450, 930, 1890, 2850 s.
    assert set(copies.values()) == {7}
    assert all(channel == "sms" for _, channel in undispatched)


def test_rel03_the_sweep_re_dispatches_nothing_dispatched_within_the_grace_period(user, settings, undispatched):
    settings.OUTBOX_SWEEP_GRACE_SECONDS = 30
    message = queued_text(user)
    with freeze_time(timezone.now() + timedelta(seconds=20)):
        assert outbox.redispatch_stale() == 0
    with freeze_time(timezone.now() + timedelta(seconds=31)):
        assert outbox.redispatch_stale() == 1
    assert undispatched == [(message.pk, "sms")]


def test_rel02_a_lease_shorter_than_a_task_may_run_is_refused(settings):
    from devices.checks import check_outbox_lease_outlasts_time_limit

    assert check_outbox_lease_outlasts_time_limit(None) == []
    settings.OUTBOX_SENDING_LEASE_SECONDS = settings.CELERY_TASK_TIME_LIMIT
    (error,) = check_outbox_lease_outlasts_time_limit(None)
    assert error.id == "devices.E007"
