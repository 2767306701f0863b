"""The outbox's delivery rules, in-process: claim, retry, expiry, erasure (REL-01, 02, 04, 10)."""

from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from freezegun import freeze_time

from devices import outbox
from devices.models import OutboundMessage
from devices.tests.fakes import RecordingGateway
from testsupport import backend_pid, drop_from_the_server, owner_cursor

Status = OutboundMessage.Status


class FlakyGateway(RecordingGateway):
    """Fails with the scripted errors first, then records like the recording gateway."""

    failures: list = []

    def send_sms(self, number, text):
        if FlakyGateway.failures:
            raise FlakyGateway.failures.pop(0)
        return super().send_sms(number, text)


@pytest.fixture
def gateway(recording_gateway, settings):
    """The shared recording gateway, failing first as a test scripts it."""
    settings.PHONE_GATEWAY = "devices.tests.test_outbox_delivery.FlakyGateway"
    FlakyGateway.failures = []
    return FlakyGateway


@pytest.fixture
def queued_sms(user):
    def make(*, minutes=10):
        return outbox.queue_phone_message(
            user=user,
            channel="sms",
            number="+16175550123",
            body="123456 is your code",
            template="test",
            expires_at=timezone.now() + timedelta(minutes=minutes),
        )

    return make


def test_rel01_dispatch_waits_for_commit_and_never_follows_a_rollback(
    queued_sms, gateway, django_capture_on_commit_callbacks
):
    with (
        django_capture_on_commit_callbacks(execute=False) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        queued_sms()
        raise RuntimeError("the state change failed")
    assert OutboundMessage.objects.count() == 0 and callbacks == []
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        message = queued_sms()
    assert RecordingGateway.delivered == []  # nothing sent before the commit
    for callback in callbacks:
        callback()
    message.refresh_from_db()
    assert message.status == Status.SENT and len(RecordingGateway.delivered) == 1


def test_rel02_running_the_send_twice_sends_once(queued_sms, gateway):
    message = queued_sms()
    first = outbox.deliver_message(message.pk)
    second = outbox.deliver_message(message.pk)
    assert first.message.status == Status.SENT and second.message is None
    assert len(RecordingGateway.delivered) == 1
    message.refresh_from_db()
    assert message.attempts == 1 and message.provider_id.startswith("rec-sms-")


def test_rel02_code_body_is_encrypted_while_queued_and_erased_once_sent(queued_sms, gateway):
    message = queued_sms()
    assert "123456" not in message.encrypted_body and message.encrypted_body
    outbox.deliver_message(message.pk)
    message.refresh_from_db()
    assert message.encrypted_body == ""


def test_rel04_transient_errors_retry_with_backoff_and_the_same_text(queued_sms, gateway, settings):
    from devices.gateways import TransientGatewayError

    settings.OUTBOX_BACKOFF_BASE_SECONDS = 2
    FlakyGateway.failures = [TransientGatewayError("503"), TransientGatewayError("503")]
    message = queued_sms()
    delays = []
    with freeze_time(timezone.now()) as clock:
        for _ in range(3):
            delivery = outbox.deliver_message(message.pk)
            if delivery.retry_in is not None:
                assert outbox.deliver_message(message.pk).message is None  # not before its time
                delays.append(delivery.retry_in)
                clock.tick(timedelta(seconds=delivery.retry_in + 0.01))
    message.refresh_from_db()
    assert message.status == Status.SENT and message.attempts == 3
    assert 2 <= delays[0] <= 2 and 2 <= delays[1] <= 4
    assert [d.text for d in RecordingGateway.delivered] == ["123456 is your code"]


def test_rel04_never_retries_past_the_codes_lifetime(queued_sms, gateway, settings):
    from devices.gateways import TransientGatewayError

    settings.OUTBOX_BACKOFF_BASE_SECONDS = 120
    FlakyGateway.failures = [TransientGatewayError("timeout")]
    message = queued_sms(minutes=1)
    delivery = outbox.deliver_message(message.pk)
    assert delivery.retry_in is None
    message.refresh_from_db()
    assert message.status == Status.FAILED and message.encrypted_body == ""


def test_rel04_gives_up_after_the_last_attempt(queued_sms, gateway, settings):
    from devices.gateways import TransientGatewayError

    settings.OUTBOX_MAX_ATTEMPTS = 2
    settings.OUTBOX_BACKOFF_BASE_SECONDS = 0.01
    settings.OUTBOX_BACKOFF_MAX_SECONDS = 0.01
    FlakyGateway.failures = [TransientGatewayError("503")] * 5
    message = queued_sms()
    with freeze_time(timezone.now()) as clock:
        assert outbox.deliver_message(message.pk).retry_in is not None
        clock.tick(timedelta(seconds=1))
        assert outbox.deliver_message(message.pk).retry_in is None
    message.refresh_from_db()
    assert message.status == Status.FAILED and message.attempts == 2 and message.last_error == "503"


def test_rel04_permanent_error_fails_at_once(queued_sms, gateway):
    from devices.gateways import PermanentGatewayError

    FlakyGateway.failures = [PermanentGatewayError("provider refused: 400 21211")]
    message = queued_sms()
    assert outbox.deliver_message(message.pk).retry_in is None
    message.refresh_from_db()
    assert message.status == Status.FAILED and message.attempts == 1
    assert RecordingGateway.delivered == []


def test_expired_message_is_not_sent_and_its_body_is_erased(queued_sms, gateway):
    message = queued_sms(minutes=10)
    with freeze_time(timezone.now() + timedelta(minutes=11)):
        assert outbox.deliver_message(message.pk).message is None
    message.refresh_from_db()
    assert message.status == Status.EXPIRED and message.encrypted_body == ""
    assert RecordingGateway.delivered == []


def test_rel03_sweep_picks_up_stale_and_undispatched_messages_only(queued_sms, gateway, settings):
    settings.OUTBOX_SWEEP_GRACE_SECONDS = 30
    fresh = queued_sms()
    stale = queued_sms()
    a_minute_ago = timezone.now() - timedelta(minutes=1)
    OutboundMessage.objects.filter(pk=stale.pk).update(created_at=a_minute_ago, last_dispatched_at=a_minute_ago)
    undispatched = queued_sms()
    OutboundMessage.objects.filter(pk=undispatched.pk).update(dispatch_failed_at=timezone.now())
    sent = queued_sms()
    outbox.deliver_message(sent.pk)
    OutboundMessage.objects.filter(pk=sent.pk).update(created_at=timezone.now() - timedelta(minutes=1))
    assert sorted(outbox.sweep()) == sorted([stale.pk, undispatched.pk])
    assert fresh.pk not in outbox.sweep()


def test_rel03_sweep_takes_back_a_message_whose_worker_died(queued_sms, gateway, settings):
    settings.OUTBOX_SENDING_LEASE_SECONDS = 60
    message = queued_sms()
    two_minutes_ago = timezone.now() - timedelta(minutes=2)
    OutboundMessage.objects.filter(pk=message.pk).update(
        status=Status.SENDING, claimed_at=two_minutes_ago, last_dispatched_at=two_minutes_ago, attempts=1
    )
    assert message.pk in outbox.sweep()
    assert outbox.deliver_message(message.pk).message.status == Status.SENT
    assert len(RecordingGateway.delivered) == 1


@pytest.fixture
def undispatched(monkeypatch):
    """Rows written in autocommit stay queued for the test to send (no task runs on commit)."""
    monkeypatch.setattr(outbox, "dispatch", lambda message_id, channel: True)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_rel08_a_connection_the_server_dropped_is_replaced_by_the_next_send(queued_sms, gateway, undispatched):
    first, second = queued_sms(), queued_sms()
    outbox.deliver_message(first.pk)
    dropped = backend_pid()
    drop_from_the_server(dropped)

    delivery = outbox.deliver_message(second.pk)

    assert delivery.message.status == Status.SENT
    second.refresh_from_db()
    assert (second.status, second.attempts, second.encrypted_body) == (Status.SENT, 1, "")
    assert len(RecordingGateway.delivered) == 2
    assert backend_pid() != dropped


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_rel08_a_dropped_connection_inside_a_transaction_is_an_error_not_a_silent_reconnect(
    queued_sms, gateway, undispatched
):
    message = queued_sms()
    with pytest.raises(DatabaseError), transaction.atomic():
        drop_from_the_server(backend_pid())
        outbox.deliver_message(message.pk)
    connection.close()
    message.refresh_from_db()
    assert (message.status, message.attempts) == (Status.QUEUED, 0)
    assert RecordingGateway.delivered == []


def _executions_of_prepared_statements():
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements")
        return cursor.fetchall()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_claim_and_outcome_are_prepared_once_and_reused_for_every_message(queued_sms, gateway, undispatched):
    for message in [queued_sms() for _ in range(3)]:
        assert outbox.deliver_message(message.pk).message.status == Status.SENT
    executions = _executions_of_prepared_statements()
    claims = [n for statement, n in executions if "SKIP LOCKED" in statement and "claimed_at" in statement]
    outcomes = [n for statement, n in executions if '"sent_at"' in statement]
    assert claims == [3] and outcomes == [3]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_prepared_statements_can_be_turned_off_for_poolers_that_lose_them(queued_sms, gateway, settings, undispatched):
    settings.DB_PREPARED_STATEMENTS = False
    connection.close()  # a fresh session, so nothing prepared by an earlier test counts
    outbox.deliver_message(queued_sms().pk)
    assert _executions_of_prepared_statements() == []


class OvertakenGateway(RecordingGateway):
    """Sends so slowly that the lease runs out and another worker takes the row and finishes it meanwhile."""

    def send_sms(self, number, text):
        OutboundMessage.objects.filter(recipient=number).update(
            status=Status.SENT, claimed_at=timezone.now() + timedelta(minutes=3), provider_id="other-worker"
        )
        return super().send_sms(number, text)


def test_rel02_a_sender_slower_than_its_lease_does_not_overwrite_the_worker_that_took_over(queued_sms, settings):
    settings.PHONE_GATEWAY = "devices.tests.test_outbox_delivery.OvertakenGateway"
    message = queued_sms()

    outbox.deliver_message(message.pk)

    message.refresh_from_db()
    assert (message.status, message.provider_id) == (Status.SENT, "other-worker")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_rel08_a_prepared_claim_the_server_no_longer_accepts_is_mended_by_a_new_connection(
    queued_sms, gateway, undispatched
):
    first, second = queued_sms(), queued_sms()
    outbox.deliver_message(first.pk)  # the claim is now prepared on this connection
    table = OutboundMessage._meta.db_table
    try:
        # A returned column changes type under the prepared statement, as a migration (the owner) would change it.
        with owner_cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table} ALTER COLUMN recipient TYPE varchar(300)")
        assert outbox.deliver_message(second.pk).message.status == Status.SENT
    finally:
        with owner_cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table} ALTER COLUMN recipient TYPE varchar(254)")
    second.refresh_from_db()
    assert (second.status, second.attempts) == (Status.SENT, 1)
