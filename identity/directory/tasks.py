"""Celery tasks of the directory: thin, idempotent.

They have time limits of their own (``DIRECTORY_SYNC_TIME_LIMIT``), not the outbox's minute that every other task
gets: a first sync of a large directory takes longer. Celery writes a task's limits into each message where it is
dispatched (web, beat), so every process must read the same settings.
"""

import logging

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from identity.models import User

from . import people, sync
from .models import DirectorySyncRun

log = logging.getLogger(__name__)

LIMITS = {"soft_time_limit": settings.DIRECTORY_SYNC_TIME_LIMIT, "time_limit": settings.DIRECTORY_SYNC_TIME_LIMIT + 60}
# A decision to apply a held run waits for the run holding the lock (runs end: each has its time limit), for an
# hour at most (sync.APPLY_WAIT, after which a later run ends it too); then the run ends failed, nobody changed.
RETRY_SECONDS = 30
MAX_RETRIES = int(sync.APPLY_WAIT.total_seconds()) // RETRY_SECONDS


@shared_task(ignore_result=True, **LIMITS)
def retire_devices_of_leavers() -> int:
    return people.retire_devices_of_leavers()


@shared_task(ignore_result=True, **LIMITS)
def sync_directory(actor_id: int | None = None) -> int | None:
    """A full sync: the schedule's (no actor), or a superuser's "Sync now". A run still going when another is due
    is left alone: the new one is refused (audited when a person asked), and the schedule tries again. A requester
    who is no longer a superuser is refused (logged). Any other error ends the run failed and is raised."""
    actor = User.objects.filter(pk=actor_id).first() if actor_id is not None else None
    if actor_id is not None and actor is None:
        return None
    trigger = DirectorySyncRun.Trigger.USER if actor is not None else DirectorySyncRun.Trigger.BEAT
    try:
        return sync.sync_directory(actor=actor, trigger=trigger).pk
    except sync.SyncInProgress:
        if actor is not None:
            sync.record_refused_request(actor=actor)
        return None
    except sync.SyncNotAllowed:
        log.warning("directory sync: the person who asked (id %s) may no longer start one; nothing ran", actor_id)
        return None


@shared_task(bind=True, ignore_result=True, max_retries=MAX_RETRIES, **LIMITS)
def apply_held_run(self, run_id: int, actor_id: int) -> int | None:
    """Apply a held run a superuser claimed (``background.request_apply``). Returns when the run or the person is
    gone, or the run is no longer waiting (applied already, a repeated message); waits while another run holds the
    lock."""
    run = DirectorySyncRun.objects.filter(pk=run_id).first()
    actor = User.objects.filter(pk=actor_id).first()
    if run is None or actor is None:
        return None
    try:
        return sync.apply_claimed_run(run, actor=actor).pk
    except sync.SyncInProgress as busy:
        # By the clock as well as the count: retries queued behind other work must not outlive the hour after which
        # a later run ends the claim (sync._end_orphans).
        out_of_time = run.decided_at is not None and timezone.now() >= run.decided_at + sync.APPLY_WAIT
        if out_of_time or self.request.retries >= MAX_RETRIES:
            sync.give_up_claimed_run(run, actor=actor, reason="Not applied: other runs held the lock for an hour.")
            return None
        raise self.retry(exc=busy, countdown=RETRY_SECONDS) from busy
    except sync.SyncNotAllowed:
        return None
