"""The campaigns' periodic work. Thin, ids only, idempotent: the work is in :mod:`campaigns.reminders`,
:mod:`campaigns.nudges` and :mod:`campaigns.summaries`.

A batch task queues its successor after its own transaction has committed, so a chain killed anywhere is picked up
by the next beat run from the people still without the step (each person's step is written once, whoever runs).
"""

import logging

from celery import shared_task
from django.conf import settings

from . import nudges, reminders, summaries

logger = logging.getLogger(__name__)


def _dispatch(task, args: tuple, **options) -> None:
    # A broker that is down stops this chain only: the next beat run starts it again from the people still without
    # the step, and nothing was lost (the rows say who had what).
    try:
        task.apply_async(args, **options)
    except Exception as exc:  # any broker failure
        logger.warning("could not dispatch %s%s (%s); beat starts it again", task.name, args, type(exc).__name__)


@shared_task(ignore_result=True)
def plan_reminders() -> None:
    """Beat: start a chain of batches for each campaign with a step due now."""
    for campaign_id, step in reminders.steps_due_now():
        _dispatch(queue_reminders, (campaign_id, step, 0))


def _follow(task, batch, *args) -> None:
    if batch.waiting:
        _dispatch(task, (*args, batch.last_person_id), countdown=settings.REMINDER_BACKLOG_WAIT_SECONDS)
    elif batch.last_person_id is not None:
        _dispatch(task, (*args, batch.last_person_id))


@shared_task(acks_late=True, ignore_result=True)
def queue_reminders(campaign_id: int, step: int, after_person_id: int) -> None:
    _follow(
        queue_reminders,
        reminders.queue_reminder_batch(campaign_id, step, after_person_id=after_person_id),
        campaign_id,
        step,
    )


@shared_task(acks_late=True, ignore_result=True)
def queue_nudges(campaign_id: int, after_person_id: int) -> None:
    _follow(queue_nudges, nudges.queue_nudge_batch(campaign_id, after_person_id=after_person_id), campaign_id)


@shared_task(ignore_result=True)
def send_weekly_summaries() -> None:
    """Beat, weekly: each open campaign's owner gets its numbers by email."""
    summaries.queue_weekly_summaries()
