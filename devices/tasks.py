"""Celery tasks: thin, id-only, idempotent. The work is in :mod:`devices.outbox`.

Each channel's sends go to a queue of their own and the sweep to another (``OUTBOX_QUEUES``, ``CELERY_TASK_ROUTES``).
A send that runs past its time limit is stopped: its row stays "sending" and the sweep takes it back after the
lease, which is longer than the limit. The daily purge runs on the maintenance queue with a limit of its own.
"""

from celery import shared_task

from . import outbox, retention, services


# Its time limits are the default ones (CELERY_TASK_SOFT_TIME_LIMIT, from OUTBOX_SEND_TIME_LIMIT_SECONDS). Celery
# writes them into each task when it is dispatched: every process (web, beat, workers) must read the same settings.
@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=None)
def send_outbound_message(self, message_id: int) -> None:
    delivery = outbox.deliver_message(message_id)
    if delivery.retry_in is not None:
        # The row says how often it was tried; the outbox decides when to give up. The retry goes to the queue
        # this task came from.
        raise self.retry(countdown=delivery.retry_in)


@shared_task(ignore_result=True)
def sweep_outbox() -> None:
    outbox.redispatch_stale()


@shared_task(ignore_result=True)
def expire_reactivations() -> None:
    services.expire_stale_reactivations()


@shared_task(ignore_result=True, soft_time_limit=3600, time_limit=3660)
def purge_expired_records() -> None:
    retention.purge_expired_records()
