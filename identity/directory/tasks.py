"""Celery tasks of the directory: thin, idempotent."""

from celery import shared_task

from . import people, sync
from .models import DirectorySyncRun


@shared_task(ignore_result=True)
def retire_devices_of_leavers() -> int:
    return people.retire_devices_of_leavers()


@shared_task(ignore_result=True)
def sync_directory() -> int | None:
    """The scheduled full sync. A run still going when the next is due is left alone (that one is refused)."""
    try:
        return sync.sync_directory(trigger=DirectorySyncRun.Trigger.BEAT).pk
    except sync.SyncInProgress:
        return None
