"""Celery tasks: thin, id-only, idempotent. The work is in :mod:`devices.outbox`."""

from celery import shared_task

from . import outbox, retention, services


@shared_task(bind=True, acks_late=True, ignore_result=True, max_retries=None)
def send_outbound_message(self, message_id: int) -> None:
    delivery = outbox.deliver_message(message_id)
    if delivery.retry_in is not None:
        # The row says how often it was tried; the outbox decides when to give up.
        raise self.retry(countdown=delivery.retry_in)


@shared_task(ignore_result=True)
def sweep_outbox() -> None:
    for message_id in outbox.sweep():
        outbox.dispatch(message_id)


@shared_task(ignore_result=True)
def expire_reactivations() -> None:
    services.expire_stale_reactivations()


@shared_task(ignore_result=True)
def purge_expired_records() -> None:
    retention.purge_expired_records()
