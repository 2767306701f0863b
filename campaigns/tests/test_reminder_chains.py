"""One reminder chain per campaign at a time: beat, running every few minutes while a chain waits hours for the
outbox to drain, starts no second one; a chain that died is started again once its lease has run out, and the old
one, if it turns up after all, stops. Tasks go to a private Redis broker and are read back from its queue."""

import ast
import time

import pytest
from django.core.cache import cache

from campaigns import reminder_tasks
from campaigns.tests.support import add_members, running_campaign
from campaigns.tests.test_nudges_quiet import tasks_waiting
from config.celery import app
from devices.models import OutboundMessage
from devices.tests import test_phone_worker

pytestmark = [pytest.mark.django_db, pytest.mark.redis]

private_redis = test_phone_worker.private_redis


@pytest.fixture(autouse=True)
def _own_leases():
    """The leases are in the cache, which outlives a test, and campaign ids repeat from test to test."""
    cache.clear()
    yield
    cache.clear()


def chains_waiting(url: str) -> list[tuple]:
    return [
        ast.literal_eval(task["argsrepr"])
        for task in tasks_waiting(url)
        if task["task"] == "campaigns.reminder_tasks.queue_reminders"
    ]


def campaign_messages():
    return OutboundMessage.objects.filter(template__startswith="campaigns:")


def test_beat_starts_no_second_chain_while_one_goes_on_and_another_once_it_ended(private_redis, make_user):
    app.conf.task_always_eager = False  # the chain's tasks wait in the private broker; the autouse fixture restores it
    campaign = running_campaign()
    add_members(campaign, [make_user()])

    reminder_tasks.plan_reminders()
    reminder_tasks.plan_reminders()  # beat again while the first chain's task still waits
    (chain,) = chains_waiting(private_redis.url)
    assert chain[:2] == (campaign.pk, 0)

    reminder_tasks.queue_reminders(*chain)  # the worker runs it: one batch, the last
    assert campaign_messages().count() == 1
    add_members(campaign, [make_user()])  # a joiner, after the chain ended
    reminder_tasks.plan_reminders()
    assert len(chains_waiting(private_redis.url)) == 2  # the first task is still in the queue: nobody took it here


def test_a_chain_that_died_is_started_again_when_its_lease_runs_out_and_the_old_one_stops(
    private_redis, make_user, settings
):
    app.conf.task_always_eager = False
    settings.REMINDER_BACKLOG_WAIT_SECONDS = 1  # a lease of a few seconds
    campaign = running_campaign()
    add_members(campaign, [make_user()])
    reminder_tasks.plan_reminders()
    (dead,) = chains_waiting(private_redis.url)  # its worker dies before it runs: nothing renews its lease

    reminder_tasks.plan_reminders()
    assert len(chains_waiting(private_redis.url)) == 1
    time.sleep(reminder_tasks._lease_seconds() + 0.5)
    reminder_tasks.plan_reminders()
    (new,) = [chain for chain in chains_waiting(private_redis.url) if chain != dead]
    assert new[:2] == dead[:2] and new[2] != dead[2]

    reminder_tasks.queue_reminders(*dead)  # turns up after all: the new chain holds the lease, so it does nothing
    assert not campaign_messages().exists()
    reminder_tasks.queue_reminders(*new)
    assert campaign_messages().count() == 1
