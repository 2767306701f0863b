"""Nudges in quiet hours: the chain's next look is at the end of the quiet hours (one task in the broker, due then),
never a look every REMINDER_BACKLOG_WAIT_SECONDS all night; a long night is waited in steps shorter than the
broker's visibility timeout, so Redis never hands the waiting task out twice."""

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import redis
from django.utils import timezone

from campaigns import reminder_tasks
from campaigns.models import Nudge
from campaigns.tests.support import running_campaign
from config.celery import app
from devices.tests import test_phone_worker

pytestmark = [pytest.mark.django_db, pytest.mark.redis]

private_redis = test_phone_worker.private_redis
ZONE = ZoneInfo("America/New_York")


def quiet_for(minutes: int):
    """A campaign whose quiet hours began an hour ago and end ``minutes`` from now (to the minute), and that end."""
    local = timezone.now().astimezone(ZONE)
    end = (local + timedelta(minutes=minutes)).replace(second=0, microsecond=0)
    campaign = running_campaign(
        time_zone="America/New_York", quiet_from=(local - timedelta(hours=1)).time(), quiet_until=end.time()
    )
    return campaign, end


def tasks_waiting(url: str) -> list[dict]:
    with redis.Redis.from_url(url) as broker:
        return [json.loads(raw)["headers"] for raw in broker.lrange("celery", 0, -1)]


@pytest.mark.parametrize("minutes", [20, 5 * 60])
def test_a_nudge_chain_in_quiet_hours_looks_again_when_they_end_not_every_half_minute(private_redis, minutes):
    app.conf.task_always_eager = False  # the follow-up goes to the private broker; the autouse fixture restores it
    campaign, end = quiet_for(minutes)
    before = timezone.now()

    reminder_tasks.queue_nudges(campaign.pk, 41)

    (waiting,) = tasks_waiting(private_redis.url)
    assert waiting["task"] == "campaigns.reminder_tasks.queue_nudges"
    assert waiting["argsrepr"] == repr((campaign.pk, 41))
    eta = datetime.fromisoformat(waiting["eta"])
    longest = timedelta(seconds=0.8 * 3600)  # the visibility timeout, Redis's default, with room to spare
    if end - before <= longest:
        assert eta == end
    else:
        assert before + longest <= eta <= timezone.now() + longest < end
    assert not Nudge.objects.filter(campaign=campaign).exists()
