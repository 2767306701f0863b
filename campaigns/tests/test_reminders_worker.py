"""Reminders under real faults: a real prefork worker (as deploy/ runs them) killed mid-batch, and the broker (a
redis-server of the test's own) killed too, losing every task it held; beat runs the planner again and again.
Each person gets the step once: one outbox row, one email."""

import signal
from collections import Counter

import pytest
from django.db.models import Count

from campaigns import reminder_tasks
from campaigns.models import Member
from campaigns.tests.support import add_members, running_campaign
from devices import tasks
from devices.models import OutboundMessage
from devices.tests import test_phone_worker
from devices.tests.test_outbox_faults import Supervised, worker_options
from testsupport import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

private_redis = test_phone_worker.private_redis
PEOPLE = 60


def stepped(campaign) -> int:
    return Member.objects.filter(campaign=campaign, last_reminded_at__isnull=False).count()


def delivered(mail_dir) -> Counter:
    """Emails the worker handed to its (file) mail server, by recipient."""
    counts = Counter()
    for path in mail_dir.iterdir():
        for line in path.read_text().splitlines():
            if line.startswith("To: "):
                counts[line[4:].strip()] += 1
    return counts


def test_reminders_go_out_once_per_person_while_the_worker_is_killed_and_redis_dropped_mid_batch(
    private_redis, start_worker, make_user, settings
):
    campaign = running_campaign()
    people = [make_user() for _ in range(PEOPLE)]
    add_members(campaign, people)
    # Small batches that wait for the outbox to drain: the chain is still running when the worker is killed.
    # The sweep and the planner run in this process, as beat would, with the workers' settings (a message the killed
    # worker held mid-send waits out this lease, not the default two minutes).
    fast = {
        "REMINDER_BATCH_SIZE": 5,
        "REMINDER_BACKLOG": 5,
        "REMINDER_BACKLOG_WAIT_SECONDS": 1,
        "OUTBOX_SENDING_LEASE_SECONDS": 30,
        "OUTBOX_SWEEP_GRACE_SECONDS": 2,
    }
    for name, value in fast.items():
        setattr(settings, name, value)
    env = {name: str(value) for name, value in fast.items()}
    worker = Supervised(start_worker, worker_options("celery,bulk-email"), env)
    reminder_tasks.plan_reminders()
    wait_for(lambda: stepped(campaign) >= 10, timeout=60, interval=0.1)

    worker.worker.process.send_signal(signal.SIGKILL)  # mid-chain: a batch may be half written, a send half done
    worker.worker.process.wait()
    at_kill = stepped(campaign)
    private_redis.process.send_signal(signal.SIGKILL)  # and every task the broker held is gone
    private_redis.process.wait()
    assert at_kill < PEOPLE
    private_redis.start()
    # This test process's own pooled connections died with the broker (its pings would wait on them for ever).
    test_phone_worker.use_broker(private_redis.url)

    def done() -> bool:
        worker.check()  # restarted, as systemd does
        tasks.sweep_outbox()  # beat's outbox sweep
        reminder_tasks.plan_reminders()  # and beat's planner, again and again (a chain alive or not)
        rows = OutboundMessage.objects.filter(template__startswith="campaigns:")
        return stepped(campaign) == PEOPLE and not rows.exclude(status=OutboundMessage.Status.SENT).exists()

    wait_for(done, timeout=120, interval=2)
    rows = OutboundMessage.objects.filter(template__startswith="campaigns:")
    per_person = dict(rows.values("user_id").annotate(n=Count("pk")).values_list("user_id", "n"))
    assert per_person == {person.pk: 1 for person in people}
    wait_for(lambda: sum(delivered(worker.worker.mail_dir).values()) >= PEOPLE, timeout=30)
    assert delivered(worker.worker.mail_dir) == Counter({person.email: 1 for person in people})
    assert worker.restarts == 1
