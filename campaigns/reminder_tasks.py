"""The campaigns' periodic work. Thin, ids only, idempotent: the work is in :mod:`campaigns.reminders`,
:mod:`campaigns.nudges` and :mod:`campaigns.summaries`.

A batch task queues its successor after its own transaction has committed, so a chain killed anywhere is picked up
by the next beat run from the people still without the message due (each person's is written once, whoever runs).

One reminder chain per campaign goes on at a time: a chain holds a lease in the cache, renewed by each batch for as
long as its successor should take to start (:func:`_lease_seconds`). Beat starts a chain only where no lease is
held, so a chain waiting hours for the outbox to drain is not joined by another at every beat run (each would poll
the backlog); a chain whose lease was taken over (it stalled past it, and beat started another) stops at its next
batch. A chain that died leaves its lease to run out, and the next beat run after that starts it again. Without the
cache, chains start as before: the rows still keep every message to once.
"""

import logging
import uuid
from datetime import timedelta

from celery import current_app, shared_task
from django.conf import settings
from django.core.cache import cache
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
    """Beat: start a chain of batches for each campaign with a welcome or reminder due now and no chain going on."""
    for campaign_id in reminders.campaigns_due_now():
        _start(queue_reminders, campaign_id)


def _longest_wait() -> timedelta:
    # Redis hands a task whose time has not come to a worker at once, and to another again after the broker's
    # visibility timeout (an hour unless the transport options say otherwise): each copy would start a chain. So a
    # long wait is taken in steps shorter than that timeout.
    options = current_app.conf.broker_transport_options or {}
    return timedelta(seconds=0.8 * options.get("visibility_timeout", 3600))


def _lease_key(task, campaign_id: int) -> str:
    return f"campaigns:chain:{task.name}:{campaign_id}"


def _lease_seconds(wait: float = 0) -> float:
    # Its successor's wait, and then a queue's ordinary delay: a chain late by more hands over to a new one (no
    # message is lost or doubled by that, only a poll); one that died is started again this long after its last batch.
    return wait + 2 * settings.REMINDER_BACKLOG_WAIT_SECONDS + 1


def _take_lease(task, campaign_id: int) -> str | None:
    """A new chain's name if no chain holds the campaign's lease (now this one does), else None."""
    chain = uuid.uuid4().hex
    try:
        if not cache.add(_lease_key(task, campaign_id), chain, timeout=_lease_seconds()):
            return None  # a chain is going on
    except Exception as exc:  # the cache is down: start one anyway
        logger.warning("could not read the lease of %s(%s) (%s)", task.name, campaign_id, type(exc).__name__)
    return chain


def _start(task, campaign_id: int) -> None:
    if chain := _take_lease(task, campaign_id):
        _dispatch(task, (campaign_id, 0, chain))


def _holds_lease(task, campaign_id: int, chain: str, wait: float = 0) -> bool:
    """Whether ``chain`` may go on (it holds the lease, or nobody does); if so, renewed for ``wait`` and after."""
    key = _lease_key(task, campaign_id)
    try:
        holder = cache.get(key)
        if holder not in (None, chain):
            return False
        cache.set(key, chain, timeout=_lease_seconds(wait))
    except Exception as exc:  # the cache is down: go on
        logger.warning("could not renew the lease of %s(%s) (%s)", task.name, campaign_id, type(exc).__name__)
    return True


def _release(task, campaign_id: int, chain: str) -> None:
    key = _lease_key(task, campaign_id)
    try:
        if cache.get(key) == chain:
            cache.delete(key)
    except Exception as exc:  # it runs out by itself
        logger.warning("could not release the lease of %s(%s) (%s)", task.name, campaign_id, type(exc).__name__)


def _go_on(task, campaign_id: int, chain: str | None, wait: float = 0) -> bool:
    # A nudge chain (staff start one when they choose) holds no lease.
    return chain is None or _holds_lease(task, campaign_id, chain, wait)


def _follow(task, batch, campaign_id: int, chain: str | None) -> None:
    args = (campaign_id, batch.last_person_id) + ((chain,) if chain else ())
    if batch.resume_at is not None:
        # Quiet hours: one look when they end (a few over a long night), not one every REMINDER_BACKLOG_WAIT_SECONDS.
        eta = min(batch.resume_at, timezone.now() + _longest_wait())
        if _go_on(task, campaign_id, chain, (eta - timezone.now()).total_seconds()):
            _dispatch(task, args, eta=eta)
    elif batch.waiting:
        wait = settings.REMINDER_BACKLOG_WAIT_SECONDS
        if _go_on(task, campaign_id, chain, wait):
            _dispatch(task, args, countdown=wait)
    elif batch.last_person_id is not None:
        if _go_on(task, campaign_id, chain):
            _dispatch(task, args)
    elif chain is not None:
        _release(task, campaign_id, chain)


@shared_task(acks_late=True, ignore_result=True)
def queue_reminders(campaign_id: int, after_person_id: int, chain: str | None = None) -> None:
    if chain is None:  # queued before chains held leases: it goes on only as the one chain
        chain = _take_lease(queue_reminders, campaign_id)
        if chain is None:
            return
    elif not _holds_lease(queue_reminders, campaign_id, chain):
        return  # another chain took over
    batch = reminders.queue_reminder_batch(campaign_id, after_person_id=after_person_id)
    _follow(queue_reminders, batch, campaign_id, chain)


@shared_task(acks_late=True, ignore_result=True)
def queue_nudges(campaign_id: int, after_person_id: int) -> None:
    _follow(queue_nudges, nudges.queue_nudge_batch(campaign_id, after_person_id=after_person_id), campaign_id, None)


@shared_task(ignore_result=True)
def send_weekly_summaries() -> None:
    """Beat, weekly: each open campaign's owner gets its numbers by email."""
    summaries.queue_weekly_summaries()
