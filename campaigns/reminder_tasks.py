"""The campaigns' periodic work. Thin, ids only, idempotent: the work is in :mod:`campaigns.reminders`,
:mod:`campaigns.nudges` and :mod:`campaigns.summaries`.

A batch task queues its successor after its own transaction has committed, so a chain killed anywhere is picked up
by the next beat run from the people still without the message due (each person's is written once, whoever runs).
"""

import logging
from datetime import timedelta

from celery import current_app, shared_task
from django.conf import settings
from django.utils import timezone

from . import nudges, reminders, summaries

logger = logging.getLogger(__name__)


def _dispatch(task, args: tuple, **options) -> None:
    # A broker that is down stops this chain only: the next beat run starts it again from the people still without
    # the message due, and nothing was lost (the rows say who had what).
    try:
        task.apply_async(args, **options)
    except Exception as exc:  # any broker failure
        logger.warning("could not dispatch %s%s (%s); beat starts it again", task.name, args, type(exc).__name__)


@shared_task(ignore_result=True)
def plan_reminders() -> None:
    """Beat: start a chain of batches for each campaign with a welcome or reminder due now."""
    for campaign_id in reminders.campaigns_due_now():
        _dispatch(queue_reminders, (campaign_id, 0))


def _longest_wait() -> timedelta:
    # Redis hands a task whose time has not come to a worker at once, and to another again after the broker's
    # visibility timeout (an hour unless the transport options say otherwise): each copy would start a chain. So a
    # long wait is taken in steps shorter than that timeout.
    options = current_app.conf.broker_transport_options or {}
    return timedelta(seconds=0.8 * options.get("visibility_timeout", 3600))


def _follow(task, batch, *args) -> None:
    if batch.resume_at is not None:
        # Quiet hours: one look when they end (a few over a long night), not one every REMINDER_BACKLOG_WAIT_SECONDS.
        eta = min(batch.resume_at, timezone.now() + _longest_wait())
        _dispatch(task, (*args, batch.last_person_id), eta=eta)
    elif batch.waiting:
        _dispatch(task, (*args, batch.last_person_id), countdown=settings.REMINDER_BACKLOG_WAIT_SECONDS)
    elif batch.last_person_id is not None:
        _dispatch(task, (*args, batch.last_person_id))


@shared_task(acks_late=True, ignore_result=True)
def queue_reminders(campaign_id: int, after_person_id: int) -> None:
    _follow(queue_reminders, reminders.queue_reminder_batch(campaign_id, after_person_id=after_person_id), campaign_id)


@shared_task(acks_late=True, ignore_result=True)
def queue_nudges(campaign_id: int, after_person_id: int) -> None:
    _follow(queue_nudges, nudges.queue_nudge_batch(campaign_id, after_person_id=after_person_id), campaign_id)


@shared_task(ignore_result=True)
def send_weekly_summaries() -> None:
    """Beat, weekly: each open campaign's owner gets its numbers by email."""
    summaries.queue_weekly_summaries()
