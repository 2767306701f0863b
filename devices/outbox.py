"""The transactional outbox: queue a message with the state change, send it from a task.

Writers call :func:`queue_email` or :func:`queue_phone_message` inside their
own transaction; the send task is dispatched on commit (REL-01). A broker
that is down only leaves the row queued: the request still commits, and the
periodic :func:`sweep` dispatches it later (REL-03, REL-06).

:func:`deliver_message` claims a row (``queued -> sending``, ``select_for_update(skip_locked=True)``),
so running it twice sends once (REL-02). Transient provider errors are retried
with exponential backoff and jitter, never past the message's expiry and
never with a new code; permanent errors fail at once (REL-04). A body that
holds a code or link is encrypted, and erased once the message is sent,
failed or expired.
"""

import logging
import random
import smtplib
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from . import crypto
from .gateways import PermanentGatewayError, TransientGatewayError, get_gateway
from .models import OutboundMessage

logger = logging.getLogger(__name__)
Status = OutboundMessage.Status


def dispatch(message_id: int) -> bool:
    """Hand the message to the broker. False (and the row marked) when the broker is unreachable."""
    from .tasks import send_outbound_message

    try:
        send_outbound_message.delay(message_id)
    except Exception as exc:  # any broker failure: the sweep sends it later
        logger.warning("could not dispatch outbound message %s (%s); left queued", message_id, type(exc).__name__)
        OutboundMessage.objects.filter(pk=message_id, status=Status.QUEUED).update(dispatch_failed_at=timezone.now())
        return False
    return True


def _queue(**fields) -> OutboundMessage:
    body = fields.pop("body")
    message = OutboundMessage.objects.create(encrypted_body=crypto.encrypt(body.encode()), **fields)
    transaction.on_commit(lambda: dispatch(message.pk))
    return message


def queue_email(
    *, user, to: str, subject: str, body: str, template: str, holds_secret: bool, expires_at=None
) -> OutboundMessage:
    """Write an email to the outbox; it is sent after the caller's transaction commits."""
    return _queue(
        user=user,
        channel=OutboundMessage.Channel.EMAIL,
        recipient=to,
        template=template,
        subject=subject,
        body=body,
        holds_secret=holds_secret,
        expires_at=expires_at,
    )


def queue_phone_message(*, user, channel: str, number: str, body: str, template: str, expires_at) -> OutboundMessage:
    """Write a text or a voice call to the outbox. Phone messages always carry a code: encrypted, then erased."""
    return _queue(
        user=user,
        channel=channel,
        recipient=number,
        template=template,
        body=body,
        holds_secret=True,
        expires_at=expires_at,
    )


def _claimable(now):
    lease = timedelta(seconds=settings.OUTBOX_SENDING_LEASE_SECONDS)
    waiting = Q(status=Status.QUEUED) & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    # A worker that died mid-send leaves its row "sending"; after the lease another may take it.
    abandoned = Q(status=Status.SENDING, claimed_at__lt=now - lease)
    return waiting | abandoned


def _finish(message: OutboundMessage, status: str, **fields) -> None:
    message.status = status
    for name, value in fields.items():
        setattr(message, name, value)
    if message.holds_secret and status in (Status.SENT, Status.FAILED, Status.EXPIRED):
        message.encrypted_body = ""
    message.save(update_fields=["status", "encrypted_body", *fields])


def _claim(message_id: int) -> OutboundMessage | None:
    now = timezone.now()
    with transaction.atomic():
        message = (
            OutboundMessage.objects.select_for_update(skip_locked=True).filter(_claimable(now), pk=message_id).first()
        )
        if message is None:
            return None
        if message.expires_at and message.expires_at <= now:
            _finish(message, Status.EXPIRED)
            return None
        message.status = Status.SENDING
        message.claimed_at = now
        message.attempts += 1
        message.save(update_fields=["status", "claimed_at", "attempts"])
        return message


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with full jitter: uniform in [base, min(max, base * 2^(attempt-1))]."""
    base = settings.OUTBOX_BACKOFF_BASE_SECONDS
    ceiling = min(settings.OUTBOX_BACKOFF_MAX_SECONDS, base * 2 ** max(attempt - 1, 0))
    return random.uniform(base, max(base, ceiling))  # noqa: S311  (jitter, not a secret)


def _send(message: OutboundMessage) -> str:
    body = crypto.decrypt(message.encrypted_body).decode()
    if message.channel == OutboundMessage.Channel.EMAIL:
        try:
            EmailMessage(subject=message.subject, body=body, to=[message.recipient]).send()
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, TimeoutError, ConnectionError) as exc:
            raise TransientGatewayError(type(exc).__name__) from exc
        except smtplib.SMTPException as exc:
            raise PermanentGatewayError(type(exc).__name__) from exc
        return ""
    gateway = get_gateway()
    if message.channel == OutboundMessage.Channel.SMS:
        return gateway.send_sms(message.recipient, body)
    return gateway.place_call(message.recipient, body)


@dataclass(frozen=True)
class Delivery:
    message: OutboundMessage | None
    retry_in: float | None = None


def deliver_message(message_id: int) -> Delivery:
    """Send one message if it can be claimed; say whether and when to try again."""
    message = _claim(message_id)
    if message is None:
        return Delivery(None)
    try:
        provider_id = _send(message)
    except TransientGatewayError as exc:
        delay = backoff_seconds(message.attempts)
        retry_at = timezone.now() + timedelta(seconds=delay)
        too_late = message.expires_at is not None and retry_at >= message.expires_at
        if message.attempts >= settings.OUTBOX_MAX_ATTEMPTS or too_late:
            _finish(message, Status.FAILED, last_error=str(exc)[:500])
            logger.warning("outbound message %s failed after %s attempts", message.pk, message.attempts)
            return Delivery(message)
        _finish(message, Status.QUEUED, last_error=str(exc)[:500], next_attempt_at=retry_at)
        return Delivery(message, retry_in=delay)
    except PermanentGatewayError as exc:
        _finish(message, Status.FAILED, last_error=str(exc)[:500])
        logger.warning("outbound message %s refused by the provider", message.pk)
        return Delivery(message)
    _finish(message, Status.SENT, provider_id=provider_id or "", sent_at=timezone.now(), last_error="")
    return Delivery(message)


def sweep() -> list[int]:
    """Expire what is too old to send; return ids of messages to dispatch again (REL-03)."""
    now = timezone.now()
    with transaction.atomic():
        for message in OutboundMessage.objects.select_for_update(skip_locked=True).filter(
            status__in=[Status.QUEUED, Status.SENDING], expires_at__lte=now
        ):
            if message.status == Status.QUEUED or message.claimed_at < now - timedelta(
                seconds=settings.OUTBOX_SENDING_LEASE_SECONDS
            ):
                _finish(message, Status.EXPIRED)
    grace = now - timedelta(seconds=settings.OUTBOX_SWEEP_GRACE_SECONDS)
    stale = Q(created_at__lte=grace) | Q(dispatch_failed_at__isnull=False) | Q(status=Status.SENDING)
    return list(OutboundMessage.objects.filter(_claimable(now)).filter(stale).values_list("pk", flat=True))
