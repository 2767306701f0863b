"""Celery tasks of the directory: thin, idempotent."""

from celery import shared_task

from identity.models import User

from . import people, sync
from .models import DirectorySyncRun


@shared_task(ignore_result=True)
def retire_devices_of_leavers() -> int:
    return people.retire_devices_of_leavers()


@shared_task(ignore_result=True)
def sync_directory(actor_id: int | None = None) -> int | None:
    """A full sync: the schedule's (no actor), or a superuser's "Sync now". A run still going when another is due
    is left alone (the new one is refused, and the schedule tries again)."""
    actor = User.objects.filter(pk=actor_id).first() if actor_id is not None else None
    if actor_id is not None and actor is None:
        return None
    trigger = DirectorySyncRun.Trigger.USER if actor is not None else DirectorySyncRun.Trigger.BEAT
    try:
        return sync.sync_directory(actor=actor, trigger=trigger).pk
    except sync.SyncInProgress:
        return None
