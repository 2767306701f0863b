"""Celery tasks: thin, id-only, idempotent. The work is in :mod:`devices.outbox`."""

from celery import shared_task

from . import outbox


@shared_task(acks_late=True, ignore_result=True)
def send_outbound_message(message_id: int) -> None:
    outbox.deliver_message(message_id)


@shared_task(ignore_result=True)
def sweep_outbox() -> None:
    for message_id in outbox.requeue_stale():
        send_outbound_message.delay(message_id)
