"""Celery tasks of the directory: thin, idempotent."""

from celery import shared_task

from . import people


@shared_task(ignore_result=True)
def retire_devices_of_leavers() -> int:
    return people.retire_devices_of_leavers()
