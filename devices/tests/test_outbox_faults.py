"""The outbox under real faults: a real prefork worker per queue (as deploy/ runs them), real Redis and PostgreSQL.

The broker is a redis-server of the test's own, stopped while the worker is busy; the mail server is a socket
that accepts and never answers; the provider is the Twilio stand-in, made slow to answer.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
import redis
from django.utils import timezone

from devices import outbox, tasks
from devices.models import OutboundMessage
from devices.outbox import waiting
from devices.tests import test_phone_worker
from testsupport import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

# The provider stand-in, the worker environment and a private broker, as the phone worker tests have them.
stub, worker_env, private_redis = test_phone_worker.stub, test_phone_worker.worker_env, test_phone_worker.private_redis

Status = OutboundMessage.Status
Channel = OutboundMessage.Channel


@pytest.fixture
def fault_env(worker_env):
    # A lease far longer than any send here, so that a slow send under load is never taken over (and sent twice).
    return {**worker_env, "OUTBOX_SENDING_LEASE_SECONDS": "30"}


def worker_options(queues: str) -> tuple[str, ...]:
    """The options of deploy/enrollment-worker@.service: prefork, two processes, gossip, mingle, heartbeat on."""
    return ("--pool=prefork", "--concurrency=2", f"--queues={queues}")


def queue_texts(person, count: int, *, first: int, channel=Channel.SMS, ttl=timedelta(minutes=10)):
    expires_at = timezone.now() + ttl
    return [
        outbox.queue_phone_message(
            user=person,
            channel=channel,
            number=f"+1617555{first + n:04d}",
            body=f"Your code is {100000 + first + n}",
            template="phone_code",
            expires_at=expires_at,
        )
        for n in range(count)
    ]


def statuses(messages) -> dict:
    rows = OutboundMessage.objects.filter(pk__in=[m.pk for m in messages])
    return {pk: status for pk, status in rows.values_list("pk", "status")}


def all_sent(messages) -> bool:
    return set(statuses(messages).values()) == {Status.SENT}


def deliveries(stub, messages) -> dict:
    numbers = {m.recipient for m in messages}
    counts = dict.fromkeys(numbers, 0)
    for accepted in stub.accepted:
        if accepted.to in counts:
            counts[accepted.to] += 1
    return counts


class Supervised:
    """A worker restarted whenever it exits, as systemd's Restart=always does (deploy/enrollment-worker@.service)."""

    def __init__(self, start_worker, options, env):
        self.start_worker, self.options, self.env = start_worker, options, env
        self.worker = start_worker(*options, **env)
        self.restarts = 0

    def check(self) -> None:
        if self.worker.process.poll() is not None:
            self.restarts += 1
            self.worker = self.start_worker(*self.options, **self.env)


@pytest.mark.parametrize("how", ["stopped", "killed", "killed and the worker exits"])
def test_rel03_rel06_sending_resumes_within_a_minute_when_redis_drops_while_the_worker_is_busy(
    how, private_redis, start_worker, fault_env, stub, make_user, settings
):
    settings.OUTBOX_SWEEP_GRACE_SECONDS = 10  # for the sweep run here, as beat would
    worker = Supervised(start_worker, worker_options("sms"), fault_env)
    stub.state.answer_delay["sms"] = 0.3  # each process holds a text when the broker goes
    person = make_user()
    before = queue_texts(person, 30, first=1000)
    wait_for(lambda: len(stub.accepted) >= 4)

    if how.startswith("killed"):
        private_redis.process.send_signal(signal.SIGKILL)
        private_redis.process.wait()
    else:
        private_redis.stop()
    during = queue_texts(person, 5, first=2000)  # the queuing call does not hang, and the rows wait
    assert OutboundMessage.objects.filter(pk__in=[m.pk for m in during], dispatch_failed_at__isnull=False).count() == 5
    time.sleep(5)
    if how.endswith("exits"):
        # A worker that dies while the broker is away (killed, out of memory) is started again by its supervisor.
        worker.worker.process.send_signal(signal.SIGKILL)
        worker.worker.process.wait()
    time.sleep(5)
    private_redis.start()
    back = time.monotonic()

    def resumed():
        worker.check()
        tasks.sweep_outbox()  # what beat runs every OUTBOX_SWEEP_EVERY_SECONDS
        return all_sent(before + during)

    wait_for(resumed, timeout=60, interval=2)
    print(f"sending resumed {time.monotonic() - back:.1f} s after Redis came back; worker restarts: {worker.restarts}")
    # Each text went out once: the rows, not the broker, say what was sent.
    assert set(deliveries(stub, before + during).values()) == {1}
    assert worker.restarts == (1 if how.endswith("exits") else 0)


def test_rel03_the_queue_stays_bounded_while_no_worker_consumes(
    private_redis, start_worker, fault_env, stub, make_user, settings
):
    # No worker for a while: the texts wait in the broker, and the sweep runs every half second (grace 1 s).
    from config.celery import app

    app.conf.task_always_eager = False  # start_worker sets it back
    settings.OUTBOX_SWEEP_GRACE_SECONDS = 1
    texts = queue_texts(make_user(), 20, first=6000)
    assert private_redis.queue_length("sms") == 20

    started = time.monotonic()
    while time.monotonic() - started < 12:
        tasks.sweep_outbox()
        time.sleep(0.5)

    # 24 sweeps, and none dispatched a row again: each row's task is still waiting in the broker (without the marks
    # of devices/outbox/waiting.py, the doubling wait alone would dispatch each again after 1, 3 and 7 s: 80 tasks).
    assert private_redis.queue_length("sms") == 20
    # The worker comes (the fixture empties the queue first: from then on the sweep alone brings the texts back;
    # an empty queue holds no task, whatever the marks say).
    start_worker(*worker_options("sms"), **fault_env)

    def swept_and_sent():
        tasks.sweep_outbox()
        return all_sent(texts)

    wait_for(swept_and_sent, timeout=60, interval=1)
    assert set(deliveries(stub, texts).values()) == {1}


class StalledMailServer:
    """Accepts SMTP connections and never says a word."""

    def __init__(self):
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.held: list[socket.socket] = []
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.socket.accept()
            except OSError:
                return
            self.held.append(conn)
            self.accepted += 1

    def close(self):
        self.socket.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def stalled_mail_server():
    server = StalledMailServer()
    yield server
    server.close()


def queue_notices(person, count: int):
    return [
        outbox.queue_email(
            user=person, to=person.email, subject="Notice", body="nothing secret", template="notice", holds_secret=False
        )
        for _ in range(count)
    ]


def test_rel04_a_stalled_mail_server_times_out_and_texts_still_go_out_within_seconds(
    private_redis, start_worker, fault_env, stub, stalled_mail_server, make_user
):
    env = {**fault_env, "EMAIL_URL": f"smtp://127.0.0.1:{stalled_mail_server.port}", "EMAIL_TIMEOUT": "2"}
    start_worker(*worker_options("email"), **env)
    start_worker(*worker_options("sms,voice"), **env)
    person = make_user()
    emails = queue_notices(person, 6)
    wait_for(lambda: stalled_mail_server.accepted >= 2)  # both email processes are stuck on the server

    started = time.monotonic()
    texts = queue_texts(person, 6, first=3000)
    calls = queue_texts(person, 2, first=3100, channel=Channel.VOICE)

    wait_for(lambda: all_sent(texts + calls), timeout=10)
    print(
        f"texts and calls out {time.monotonic() - started:.1f} s after they were queued, behind a stalled mail server"
    )
    assert not set(statuses(emails).values()) & {Status.SENT}
    # Every wait on the mail server ends after EMAIL_TIMEOUT: each email is tried, times out, and fails after the
    # last try (3 tries, 2 s each), rather than holding a worker for ever.
    wait_for(lambda: set(statuses(emails).values()) == {Status.FAILED}, timeout=60, interval=1)
    for email in OutboundMessage.objects.filter(pk__in=[e.pk for e in emails]):
        assert email.attempts == 3 and "timed out" in email.last_error


def test_rel04_a_send_that_overruns_its_time_limit_is_stopped(
    private_redis, start_worker, fault_env, stub, stalled_mail_server, make_user, monkeypatch
):
    # A mail server allowed to stall longer than a send may take: the time limit ends the wait. Celery writes the
    # limits into the task where it is dispatched (here, this process), so both sides get the short ones.
    task = tasks.send_outbound_message
    for name, value in [("soft_time_limit", 2), ("time_limit", 7), ("_exec_options", None)]:
        monkeypatch.setattr(task, name, value)
    env = {
        **fault_env,
        "EMAIL_URL": f"smtp://127.0.0.1:{stalled_mail_server.port}",
        "EMAIL_TIMEOUT": "120",
        "OUTBOX_SEND_TIME_LIMIT_SECONDS": "2",
    }
    start_worker(*worker_options("email"), **env)
    (email,) = queue_notices(make_user(), 1)

    started = time.monotonic()
    wait_for(lambda: OutboundMessage.objects.get(pk=email.pk).attempts >= 2, timeout=30)
    assert time.monotonic() - started < 15
    email.refresh_from_db()
    assert "SoftTimeLimitExceeded" in email.last_error


def test_rel02_rel04_a_provider_slower_than_the_timeout_sends_each_text_once(
    private_redis, start_worker, fault_env, stub, make_user
):
    # The stand-in takes each text at once and answers 3 s later; the client gives up after 1 s.
    stub.state.answer_delay["sms"] = 3
    start_worker(*worker_options("sms"), **{**fault_env, "TWILIO_TIMEOUT_SECONDS": "1"})
    texts = queue_texts(make_user(), 10, first=4000)

    wait_for(lambda: all_sent(texts), timeout=60)

    assert set(deliveries(stub, texts).values()) == {1}
    assert stub.state.lookups == 10  # each lost answer was looked up, once
    sids = {a.to: a.sid for a in stub.accepted}
    for text in OutboundMessage.objects.filter(pk__in=[t.pk for t in texts]):
        assert text.provider_id == sids[text.recipient] and text.unknown_outcome_at is None
        assert text.attempts == 2 and text.encrypted_body == ""


def test_rel04_slow_calls_do_not_starve_texts(private_redis, start_worker, fault_env, stub, make_user):
    # Calls answer after 3 s each: 10 of them keep the voice worker busy for 15 s.
    stub.state.answer_delay["voice"] = 3
    start_worker(*worker_options("voice"), **fault_env)
    start_worker(*worker_options("sms"), **fault_env)
    person = make_user()
    calls = queue_texts(person, 10, first=5000, channel=Channel.VOICE)
    wait_for(lambda: len(stub.accepted) >= 2)

    texts = queue_texts(person, 10, first=5100, ttl=timedelta(seconds=10))

    wait_for(lambda: all_sent(texts), timeout=8)
    assert set(deliveries(stub, texts).values()) == {1}
    assert not all_sent(calls)
    wait_for(lambda: all_sent(calls), timeout=60)


def test_rel06_the_worker_outlives_redis_dropping_while_it_is_busy_ten_times_in_a_row(
    private_redis, start_worker, fault_env, stub, make_user, settings
):
    # kombu's own Redis transport can end the worker here (config/broker.py mends it, and says how often): no
    # supervisor restarts this one, and it must still be the same process after ten drops.
    settings.OUTBOX_SWEEP_GRACE_SECONDS = 1
    worker = start_worker(*worker_options("sms"), **fault_env)
    # Short answers: a text finishes, and is acknowledged, every few tens of milliseconds, so the connection is
    # lost while texts are being sent, while one is being acknowledged and while the consumer waits for the next.
    stub.state.answer_delay["sms"] = 0.04
    person = make_user()
    for trial in range(10):
        texts = queue_texts(person, 40, first=1000 + 100 * trial)
        wait_for(lambda: len(stub.accepted) >= 40 * trial + 2 + trial % 5, interval=0.005)  # noqa: B023
        if trial % 2:
            private_redis.process.send_signal(signal.SIGKILL)
            private_redis.process.wait()
        else:
            private_redis.stop()
        time.sleep(0.5)
        private_redis.start()  # empty: what was queued is gone, and the sweep dispatches it again

        def sent():
            assert worker.process.poll() is None, f"the worker exited after drop {trial + 1}"  # noqa: B023
            tasks.sweep_outbox()
            return all_sent(texts)  # noqa: B023

        wait_for(sent, timeout=60, interval=0.5)
        assert set(deliveries(stub, texts).values()) == {1}
    assert worker.process.poll() is None
    assert "Unrecoverable error" not in worker.log.read_text()


def test_rel03_with_the_texts_worker_away_beat_and_the_sweep_queue_one_task_per_row(
    private_redis, start_worker, fault_env, stub, make_user, tmp_path, settings
):
    # Beat sends a sweep every second to a worker of its own; the grace is 1 s and the doubling wait stops at 2 s,
    # so only the marks stop the sweep from dispatching the rows again while nothing takes the texts.
    env = {
        **fault_env,
        "OUTBOX_SWEEP_EVERY_SECONDS": "1",
        "OUTBOX_SWEEP_GRACE_SECONDS": "1",
        "OUTBOX_SWEEP_MAX_BACKOFF_SECONDS": "2",
    }
    start_worker(*worker_options("sweep"), **env)
    beat_log = tmp_path / "beat.log"
    with beat_log.open("ab") as output:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "beat", "--loglevel=INFO"]
            + [f"--schedule={tmp_path / 'beat-schedule'}"],
            cwd=settings.BASE_DIR,
            env={**os.environ, "CELERY_BROKER_URL": private_redis.url, "CELERY_TASK_ALWAYS_EAGER": "false", **env},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        # Beat may take seconds to start on a busy machine: the 20 s below begin at its first sweep.
        def sent_sweeps():
            return beat_log.read_text().count("Sending due task sweep-outbox")

        wait_for(lambda: sent_sweeps() >= 1, timeout=60, interval=0.2)
        before = sent_sweeps()
        texts = queue_texts(make_user(), 50, first=7000)
        # Ten of the tasks are lost from the broker (the newest: the worker takes from the other end).
        with redis.Redis.from_url(private_redis.url) as broker:
            assert len(broker.lpop("sms", 10)) == 10
        time.sleep(20)
        assert sent_sweeps() - before >= 15
        assert private_redis.queue_length("sms") == 40  # 50 tasks for 50 rows over 20 sweeps
        assert private_redis.queue_length("sweep") == 0
        assert not OutboundMessage.objects.filter(pk__in=[t.pk for t in texts], sweep_dispatches__gt=0).exists()

        # The texts' worker comes back: it empties the queue, and then the sweep sends the ten lost ones again.
        start_worker(*worker_options("sms"), **env)
        wait_for(lambda: all_sent(texts), timeout=60, interval=0.5)
        assert set(deliveries(stub, texts).values()) == {1}
        # The ten, and at most the two the worker had taken but not started when a sweep found the queue empty.
        redispatched = OutboundMessage.objects.filter(pk__in=[t.pk for t in texts], sweep_dispatches__gt=0)
        assert 10 <= redispatched.count() <= 12
        assert not redispatched.filter(sweep_dispatches__gt=1).exists()
    finally:
        beat.terminate()
        beat.wait(timeout=15)


def test_rel03_one_sweep_at_a_time(private_redis, start_worker, fault_env, make_user, settings):
    from config.celery import app

    app.conf.task_always_eager = False  # the broker is the private Redis; start_worker sets it back
    settings.OUTBOX_SWEEP_GRACE_SECONDS = 0
    (text,) = queue_texts(make_user(), 1, first=7500)
    with redis.Redis.from_url(private_redis.url) as broker:
        broker.delete("sms")  # its task is lost
    with waiting.one_sweep() as first:
        assert first
        assert tasks.sweep_outbox() is None and outbox.redispatch_stale() == 0  # a second sweep does nothing
    assert outbox.redispatch_stale() == 1
