"""The transactional outbox: queue a message with the state change, send it from a task.

Writers call :func:`queue_email` inside their own transaction; the send task is
dispatched on commit (REL-01). :func:`deliver_message` claims a queued row,
sends it and records the outcome; running it twice sends once (REL-02).
"""

import logging
from datetime import timedelta

from django.core.mail import EmailMessage
from django.db import transaction
from django.utils import timezone

from . import crypto
from .models import OutboundMessage

logger = logging.getLogger(__name__)


def _dispatch(message_id: int) -> None:
    from .tasks import send_outbound_message

    try:
        send_outbound_message.delay(message_id)
    except Exception:  # broker down: the row stays queued and the sweep sends it later (REL-03, REL-06)
        logger.warning("could not dispatch outbound message %s; left queued for the sweep", message_id)


def queue_email(
    *, user, to: str, subject: str, body: str, template: str, holds_secret: bool, expires_at=None
) -> OutboundMessage:
    """Write an email to the outbox and dispatch its send on commit. Call inside the state change's transaction."""
    message = OutboundMessage.objects.create(
        user=user,
        channel=OutboundMessage.Channel.EMAIL,
        recipient=to,
        template=template,
        subject=subject,
        encrypted_body=crypto.encrypt(body.encode()),
        holds_secret=holds_secret,
        expires_at=expires_at,
    )
    transaction.on_commit(lambda: _dispatch(message.pk))
    return message


def _claim(message_id: int) -> OutboundMessage | None:
    with transaction.atomic():
        message = (
            OutboundMessage.objects.select_for_update(skip_locked=True)
            .filter(pk=message_id, status=OutboundMessage.Status.QUEUED)
            .first()
        )
        if message is None:
            return None
        if message.expires_at and message.expires_at <= timezone.now():
            message.status = OutboundMessage.Status.EXPIRED
            message.encrypted_body = ""
            message.save(update_fields=["status", "encrypted_body"])
            return None
        message.status = OutboundMessage.Status.SENDING
        message.attempts += 1
        message.save(update_fields=["status", "attempts"])
        return message


def deliver_message(message_id: int) -> OutboundMessage | None:
    """Send one queued message. Returns it, or None when it was not queued (already sent, taken, gone)."""
    message = _claim(message_id)
    if message is None:
        return None
    body = crypto.decrypt(message.encrypted_body).decode()
    try:
        EmailMessage(subject=message.subject, body=body, to=[message.recipient]).send()
    except Exception as exc:
        message.status = OutboundMessage.Status.FAILED
        message.last_error = type(exc).__name__
        message.save(update_fields=["status", "last_error"])
        logger.warning("outbound message %s failed: %s", message.pk, type(exc).__name__)
        return message
    message.status = OutboundMessage.Status.SENT
    message.sent_at = timezone.now()
    if message.holds_secret:
        message.encrypted_body = ""
    message.save(update_fields=["status", "sent_at", "encrypted_body"])
    return message


def requeue_stale(*, older_than: timedelta = timedelta(seconds=30)) -> list[int]:
    """Ids of messages still queued after ``older_than``: the sweep dispatches them again (REL-03)."""
    cutoff = timezone.now() - older_than
    return list(
        OutboundMessage.objects.filter(status=OutboundMessage.Status.QUEUED, created_at__lte=cutoff).values_list(
            "pk", flat=True
        )
    )
