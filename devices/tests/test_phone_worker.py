"""Texts and calls through a real Celery worker on real Redis, the real Twilio gateway and a stand-in provider.

Covers REL-02 (one send per message), REL-03 (the sweep after a lost dispatch
or a killed worker), REL-04 (retries, failures and what the person sees),
REL-06 (the broker down while a person asks for a code) and REL-10 (an email
queued while the broker is down). The provider is the only thing stood in for:
a local HTTP server that the real ``twilio`` library talks to.
"""

import html
import io
import re
import shutil
import signal
import socket
import subprocess
from urllib.parse import parse_qs

import pytest
import redis
from django.db import transaction
from django.utils import timezone
from kombu import pools

from config.celery import app
from devices import errors, kinds, outbox, phone_codes, services, tasks
from devices.models import ActivationLink, OutboundMessage, PhoneVerification, Registration
from devices.tests.helpers import events, pending_app_registration
from devices.tests.twilio_stub import TwilioStub
from testsupport import REQUIRE_SERVICES, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

Status = OutboundMessage.Status
SID = "AC" + "0" * 32
CODE_RE = re.compile(r"\b(\d{6})\b")


class RecordingStub(TwilioStub):
    """The provider stand-in, also keeping the form of every request, answered or not."""

    def __init__(self):
        super().__init__()
        self.requests: list[dict] = []
        base = self.server.RequestHandlerClass
        seen = self.requests

        class Handler(base):
            def do_POST(self):  # noqa: N802  (http.server's naming)
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                seen.append({key: values[0] for key, values in parse_qs(raw.decode()).items()})
                wire, self.rfile = self.rfile, io.BytesIO(raw)
                try:
                    super().do_POST()
                finally:
                    self.rfile = wire

        self.server.RequestHandlerClass = Handler


@pytest.fixture
def stub():
    server = RecordingStub().start()
    yield server
    server.stop()


@pytest.fixture
def worker_env(stub):
    """What the worker needs to text and call through the stand-in, with short waits so the tests are quick."""
    return {
        "PHONE_GATEWAY": "devices.gateways.twilio_from_settings",
        "TWILIO_API_BASE_URL": stub.base_url,
        "TWILIO_ACCOUNT_SID": SID,
        "TWILIO_AUTH_TOKEN": "t" * 32,
        "TWILIO_FROM_NUMBER": "+16175550100",
        "TWILIO_TIMEOUT_SECONDS": "20",
        "OUTBOX_MAX_ATTEMPTS": "3",
        "OUTBOX_BACKOFF_BASE_SECONDS": "0.1",
        "OUTBOX_BACKOFF_MAX_SECONDS": "0.3",
        "OUTBOX_SENDING_LEASE_SECONDS": "1",
        "OUTBOX_SWEEP_GRACE_SECONDS": "1",
    }


@pytest.fixture
def quick_outbox(settings):
    # The sweep runs in this process too: it must agree with the worker on the lease.
    settings.OUTBOX_SENDING_LEASE_SECONDS = 1
    settings.OUTBOX_SWEEP_GRACE_SECONDS = 1
    return settings


def use_broker(url: str) -> None:
    """Point this process's Celery app at another broker for what it publishes, dropping connections made to the
    old one. Talk to the workers over a connection of its own (``control``): the app keeps its connection pool,
    which pools.reset() has closed, for its lifetime."""
    # kombu keeps its pools in a process-wide registry by broker: closing them is not enough, a later
    # lookup would hand the closed pool back. reset() closes and forgets them all.
    pools.reset()
    app.conf.broker_url = url
    # app.amqp is a cached property (deleting it clears it): the next one builds its producer pool for the new
    # broker.
    del app.amqp


def control(command: str, worker, **options):
    """Send a remote-control ``command`` to ``worker`` on the broker the app is configured for now, over a
    connection of its own."""
    with app.connection_for_write() as connection:
        return getattr(app.control, command)(destination=[worker.nodename], connection=connection, **options)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivateRedis:
    """A redis-server of this test's own, so stopping it disturbs no one else."""

    def __init__(self, binary: str):
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def start(self) -> "PrivateRedis":
        self.process = subprocess.Popen(
            [
                *(self.binary, "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--daemonize", "no"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._answers, timeout=10, interval=0.05)
        return self

    def queue_length(self, queue: str = "celery") -> int:
        with redis.Redis.from_url(self.url) as conn:
            return conn.llen(queue)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        self.process.wait(timeout=10)
        assert not self._answers()


@pytest.fixture
def private_redis():
    """A private Redis this process's Celery app (and the workers it starts) use as the broker.

    Ask for it before ``start_worker``, so the workers stop before it does.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "needs the redis-server program on PATH to stop and restart a broker"
        if REQUIRE_SERVICES:
            pytest.fail(f"REQUIRE_SERVICES=1 but this test {reason}")
        pytest.skip(reason)
    server = PrivateRedis(binary).start()
    previous = app.conf.broker_url
    use_broker(server.url)
    try:
        yield server
    finally:
        server.stop()
        use_broker(previous)


def awaiting_ownership_check(make_user, enroll, *, number: str):
    """A person in the wizard with a mobile number already on record here, so it has to be proven."""
    enroll(make_user(), number=number)
    person = make_user()
    registration = services.start_enrollment(person, kind="mobile", verified_at=None)
    registration = services.set_phone_number(
        registration, phone_number=number, actor=person, verified_at=timezone.now()
    )
    assert kinds.phone_check_required(registration)
    return person, registration


def texted_code(message: str) -> str:
    return CODE_RE.search(message).group(1)


def drain(person) -> None:
    """Wait until the (single, one-at-a-time) worker has handled everything dispatched so far.

    A harmless notice dispatched last comes out last: once it is sent, what
    went before it has been taken off the queue and handled.
    """
    with transaction.atomic():
        notice = outbox.queue_email(
            user=person, to=person.email, subject="Notice", body="nothing secret", template="notice", holds_secret=False
        )
    wait_for(lambda: OutboundMessage.objects.filter(pk=notice.pk, status=Status.SENT).exists())


def page(response) -> str:
    return html.unescape(response.content.decode())


def test_rel02_text_goes_queued_to_sent_once_through_the_worker(start_worker, worker_env, stub, make_user, enroll):
    start_worker(**worker_env)
    person = make_user()
    registration = enroll(person, number="+16175550131")

    verification = services.send_phone_code(registration, channel="sms", actor=person, verified_at=timezone.now())

    message = verification.message
    wait_for(lambda: OutboundMessage.objects.filter(pk=message.pk, status=Status.SENT).exists())
    (sms,) = stub.accepted
    assert (sms.kind, sms.to, sms.from_) == ("sms", "+16175550131", "+16175550100")
    message.refresh_from_db()
    assert (message.attempts, message.provider_id, message.encrypted_body) == (1, sms.sid, "")
    # The text carries the very code the person was issued: entering it turns on codes by text and call.
    registration = services.confirm_phone_code(
        registration, code=texted_code(sms.body), actor=person, verified_at=timezone.now()
    )
    assert registration.phone_verified_at is not None and registration.phone_device.confirmed

    tasks.send_outbound_message.delay(message.pk)
    drain(person)
    assert len(stub.accepted) == 1 and len(stub.requests) == 1
    message.refresh_from_db()
    assert (message.status, message.attempts) == (Status.SENT, 1)


def test_rel04_provider_errors_are_retried_with_the_same_code(start_worker, worker_env, stub, make_user, enroll):
    start_worker(**worker_env)
    stub.script(503, 503, 201)
    person, registration = awaiting_ownership_check(make_user, enroll, number="+16175550132")

    verification = services.send_phone_code(registration, channel="sms", actor=person)

    wait_for(lambda: OutboundMessage.objects.filter(pk=verification.message_id, status=Status.SENT).exists())
    message = OutboundMessage.objects.get(pk=verification.message_id)
    assert (message.attempts, message.encrypted_body) == (3, "")
    (sms,) = stub.accepted
    assert message.provider_id == sms.sid
    # All three tries carried one text; the code was never made again.
    assert [request["Body"] for request in stub.requests] == [sms.body] * 3
    assert PhoneVerification.objects.filter(registration=registration).count() == 1
    assert phone_codes.code_matches(PhoneVerification.objects.get(pk=verification.pk), texted_code(sms.body))


def assert_offered_the_other_channel(client, person, registration, sign_in):
    sign_in(client, person)
    response = client.get(f"/enroll/{registration.pk}/verify-phone/")
    assert response.status_code == 200
    text = page(response)
    assert f"We could not deliver the last code to {registration.masked_phone_number}" in text
    assert "Try the other way below." in text
    assert 'name="channel" value="voice"' in text


def test_rel04_provider_down_for_good_fails_after_the_last_try_and_the_person_is_told(
    start_worker, worker_env, stub, make_user, enroll, client, sign_in
):
    start_worker(**worker_env)
    stub.script(*[503] * 10)
    person, registration = awaiting_ownership_check(make_user, enroll, number="+16175550133")

    verification = services.send_phone_code(registration, channel="sms", actor=person)

    wait_for(lambda: OutboundMessage.objects.filter(pk=verification.message_id, status=Status.FAILED).exists())
    message = OutboundMessage.objects.get(pk=verification.message_id)
    assert (message.attempts, message.encrypted_body, message.last_error) == (3, "", "provider answered 503")
    assert stub.accepted == [] and len(stub.requests) == 3
    assert_offered_the_other_channel(client, person, registration, sign_in)


def test_rel04_refused_number_fails_at_once(start_worker, worker_env, stub, make_user, enroll, client, sign_in):
    start_worker(**worker_env)
    stub.script(400)
    person, registration = awaiting_ownership_check(make_user, enroll, number="+16175550134")

    verification = services.send_phone_code(registration, channel="sms", actor=person)

    wait_for(lambda: OutboundMessage.objects.filter(pk=verification.message_id, status=Status.FAILED).exists())
    message = OutboundMessage.objects.get(pk=verification.message_id)
    assert (message.attempts, message.encrypted_body) == (1, "")
    assert message.last_error.startswith("provider refused: 400")
    assert stub.accepted == [] and len(stub.requests) == 1
    assert_offered_the_other_channel(client, person, registration, sign_in)


def test_rel03_rel06_code_asked_for_while_redis_is_down_is_sent_once_after_recovery(
    private_redis, start_worker, worker_env, stub, make_user, enroll, client, sign_in
):
    worker = start_worker(**worker_env)
    person, registration = awaiting_ownership_check(make_user, enroll, number="+16175550135")
    sign_in(client, person)
    private_redis.stop()

    response = client.post(
        f"/enroll/{registration.pk}/verify-phone/", {"action": "send", "channel": "sms"}, follow=True
    )

    assert response.status_code == 200
    assert response.redirect_chain == [(f"/enroll/{registration.pk}/verify-phone/", 302)]
    assert errors.PHONE_SEND_DELAYED in page(response)
    verification = PhoneVerification.objects.get(registration=registration)
    message = verification.message
    assert message.status == Status.QUEUED and message.dispatch_failed_at is not None
    # The person is still on the check: nothing was skipped for want of a broker.
    registration.refresh_from_db()
    assert registration.status == Registration.Status.PENDING and registration.phone_verified_at is None
    assert stub.requests == []

    private_redis.start()
    # The same worker comes back to the restarted broker. While it takes nothing, two sweeps run: the second
    # leaves the message alone (dispatched within the grace period); a stray second task for it is queued too.
    wait_for(lambda: control("cancel_consumer", worker, queue="sms", reply=True, timeout=0.5))
    tasks.sweep_outbox()
    tasks.sweep_outbox()
    assert private_redis.queue_length("sms") == 1
    tasks.send_outbound_message.apply_async((message.pk,), queue="sms")
    assert private_redis.queue_length("sms") == 2
    assert control("add_consumer", worker, queue="sms", reply=True)

    wait_for(lambda: OutboundMessage.objects.filter(pk=message.pk, status=Status.SENT).exists())
    drain(person)
    (sms,) = stub.accepted
    assert sms.to == "+16175550135" and len(stub.requests) == 1
    message.refresh_from_db()
    assert message.attempts == 1
    response = client.post(
        f"/enroll/{registration.pk}/verify-phone/", {"action": "confirm", "code": texted_code(sms.body)}
    )
    assert response.status_code == 302
    registration.refresh_from_db()
    assert registration.phone_verified_at is not None


def test_rel02_rel03_worker_killed_mid_send_leads_to_one_send(
    private_redis, start_worker, worker_env, stub, quick_outbox, make_user, enroll
):
    # On a broker of its own: the killed worker's unacknowledged task stays behind in it, and goes with it.
    first = start_worker(**worker_env)
    stub.script("hang")
    person, registration = awaiting_ownership_check(make_user, enroll, number="+16175550136")

    verification = services.send_phone_code(registration, channel="sms", actor=person)

    assert stub.state.hanging.wait(timeout=20), "the worker never reached the provider"
    first.kill()
    assert first.process.returncode == -signal.SIGKILL
    message = OutboundMessage.objects.get(pk=verification.message_id)
    assert (message.status, message.attempts) == (Status.SENDING, 1)
    assert stub.accepted == []

    start_worker(**worker_env)
    # Once the lease has run out, the sweep takes the message back.
    wait_for(lambda: message.pk in outbox.sweep(), timeout=10)
    tasks.sweep_outbox()

    wait_for(lambda: OutboundMessage.objects.filter(pk=message.pk, status=Status.SENT).exists())
    drain(person)
    (sms,) = stub.accepted
    assert sms.to == "+16175550136" and len(stub.requests) == 2
    message.refresh_from_db()
    assert message.attempts == 2
    assert phone_codes.code_matches(PhoneVerification.objects.get(pk=verification.pk), texted_code(sms.body))


def test_rel10_activation_link_asked_for_while_redis_is_down_commits_and_is_sent_after_recovery(
    private_redis, start_worker, make_user
):
    mail_dir = start_worker().mail_dir
    person = make_user()
    registration = pending_app_registration(person)
    private_redis.stop()

    link = services.send_activation_link(registration, actor=person)

    assert ActivationLink.objects.filter(pk=link.pk, registration=registration).exists()
    assert events("activation_link.sent", subject=person).count() == 1
    message = OutboundMessage.objects.get(user=person, template="activation_link")
    assert message.status == Status.QUEUED and message.dispatch_failed_at is not None
    assert list(mail_dir.iterdir()) == []

    private_redis.start()
    tasks.sweep_outbox()

    wait_for(lambda: OutboundMessage.objects.filter(pk=message.pk, status=Status.SENT).exists())
    drain(person)
    mails = [path.read_text() for path in mail_dir.iterdir()]
    assert sum("/activate/" in text for text in mails) == 1
    (sent,) = [text for text in mails if "/activate/" in text]
    token = re.search(r"https?://\S+/activate/#([A-Za-z0-9_-]+)", sent).group(1)
    assert services.hash_token(token) == link.token_hash
