"""Sending one claimed message: through the mail server or the phone gateway, with retries and lost answers.

See :mod:`devices.outbox` for the rules (REL-02, REL-04).
"""

import contextlib
import logging
import random
import smtplib
from dataclasses import dataclass
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.utils import timezone

from identity import metrics

from .. import crypto
from ..gateways import PermanentGatewayError, TransientGatewayError, UnknownOutcomeError, get_gateway
from ..models import OutboundMessage
from .statements import claim_message, finish_message

logger = logging.getLogger(__name__)
Status = OutboundMessage.Status
# See devices.outbox.unwanted (the same dict).
unwanted: dict = {}
NOT_WANTED = "no longer wanted when its turn came; not sent"


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with full jitter: uniform in [base, min(max, base * 2^(attempt-1))]."""
    base = settings.OUTBOX_BACKOFF_BASE_SECONDS
    ceiling = min(settings.OUTBOX_BACKOFF_MAX_SECONDS, base * 2 ** max(attempt - 1, 0))
    return random.uniform(base, max(base, ceiling))  # noqa: S311  (jitter, not a secret)


def _send_email(message: OutboundMessage, body: str) -> None:
    # Every wait on the mail server is bounded by EMAIL_TIMEOUT (Django hands it to smtplib as the socket timeout).
    # smtplib's errors are OSErrors too: the order of the clauses matters.
    mail = get_connection()
    try:
        mail.open()  # connect, greet, log in: nothing is sent yet, so any failure here is safe to retry
    except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError) as exc:  # no greeting ("timed out")
        raise TransientGatewayError(f"{type(exc).__name__}: {exc}") from exc
    except smtplib.SMTPException as exc:  # refused log-in, no TLS, ...
        raise PermanentGatewayError(type(exc).__name__) from exc
    except OSError as exc:  # refused, unreachable, timed out
        raise TransientGatewayError(f"{type(exc).__name__}: {exc}") from exc
    try:
        EmailMessage(subject=message.subject, body=body, to=[message.recipient], connection=mail).send()
    except smtplib.SMTPRecipientsRefused as exc:
        raise PermanentGatewayError(type(exc).__name__) from exc
    except smtplib.SMTPResponseException as exc:  # the server answered: it did not take the message
        if 400 <= exc.smtp_code < 500:
            raise TransientGatewayError(f"mail server answered {exc.smtp_code}") from exc
        raise PermanentGatewayError(f"mail server answered {exc.smtp_code}") from exc
    except smtplib.SMTPServerDisconnected as exc:
        raise UnknownOutcomeError(type(exc).__name__) from exc
    except smtplib.SMTPException as exc:
        raise PermanentGatewayError(type(exc).__name__) from exc
    except OSError as exc:  # no answer after the message went out: it may have been taken
        raise UnknownOutcomeError(type(exc).__name__) from exc
    finally:
        with contextlib.suppress(OSError):  # a QUIT that fails says nothing about the message
            mail.close()


def _send(message: OutboundMessage) -> str:
    body = crypto.decrypt(message.encrypted_body).decode()
    if message.channel == OutboundMessage.Channel.EMAIL:
        _send_email(message, body)
        return ""
    gateway = get_gateway()
    if message.channel == OutboundMessage.Channel.SMS:
        return gateway.send_sms(message.recipient, body)
    return gateway.place_call(message.recipient, body)


@dataclass(frozen=True)
class Delivery:
    message: OutboundMessage | None
    retry_in: float | None = None


def _retry_or_fail(message: OutboundMessage, claim, error: str, **fields) -> Delivery:
    """After a transient error or a lost answer: queue the next try after a backoff, or fail when out of tries/time."""
    delay = backoff_seconds(message.attempts)
    retry_at = timezone.now() + timedelta(seconds=delay)
    too_late = message.expires_at is not None and retry_at >= message.expires_at
    if message.attempts >= settings.OUTBOX_MAX_ATTEMPTS or too_late:
        if finish_message(message, Status.FAILED, claimed_at=claim, last_error=error[:500], **fields):
            logger.warning("outbound message %s failed after %s attempts", message.pk, message.attempts)
            metrics.count(metrics.OUTBOX_DELIVERIES, message.channel, "failed")
        return Delivery(message)
    # The task retried below is this row's dispatch: the sweep counts its grace from when it is due.
    if not finish_message(
        message,
        Status.QUEUED,
        claimed_at=claim,
        last_error=error[:500],
        next_attempt_at=retry_at,
        last_dispatched_at=retry_at,
        **fields,
    ):
        return Delivery(message)  # another worker has it now, and its own retries
    metrics.count(metrics.OUTBOX_DELIVERIES, message.channel, "retry")
    return Delivery(message, retry_in=delay)


def _already_sent(message: OutboundMessage) -> str | None:
    """Whether the provider took the message on an attempt whose answer was lost: its id, or None if it did not."""
    assert message.unknown_outcome_at is not None  # asked only about a message whose outcome is unknown
    # Allow for the clocks of the provider and this server disagreeing by up to a minute.
    since = message.unknown_outcome_at - timedelta(minutes=1)
    body = crypto.decrypt(message.encrypted_body).decode()
    return get_gateway().find_sent(message.channel, message.recipient, body, since)


def _unwanted(message: OutboundMessage) -> str | None:
    """Why the app that queued a bulk message no longer wants it sent (the last error to record), or None."""
    check = unwanted.get(message.template.partition(":")[0])
    if check is None:
        return None
    reason = check(message)
    return f"{NOT_WANTED}: {reason}" if reason else None


def deliver_message(message_id: int) -> Delivery:
    """Send one message if it can be claimed; say whether and when to try again.

    An earlier attempt whose answer was lost is resolved first: if the provider has the message, the row is sent
    without a new request; if it cannot be asked, the next try comes after a backoff (never a blind resend).
    """
    message = claim_message(message_id)
    if message is None:
        return Delivery(None)
    claim = message.claimed_at
    if message.bulk and (reason := _unwanted(message)):
        finish_message(message, Status.EXPIRED, claimed_at=claim, last_error=reason[:500])
        return Delivery(message)
    unknown_since = message.unknown_outcome_at
    try:
        provider_id = None
        if unknown_since is not None:
            if message.channel == OutboundMessage.Channel.EMAIL:
                raise UnknownOutcomeError("no answer from the mail server after the message went out")
            provider_id = _already_sent(message)
        if provider_id is None:
            provider_id = _send(message)
    except (UnknownOutcomeError, SoftTimeLimitExceeded) as exc:
        metrics.count(metrics.OUTBOX_PROVIDER_ERRORS, message.channel, "unknown_outcome")
        # Stopped by the task's time limit mid-request is the same: the request may have gone out.
        error = (
            f"outcome unknown ({type(exc).__name__}: {exc}); not sent again until the provider says it does not have it"
        )
        lost = {"unknown_outcome_at": unknown_since or claim}
        if message.channel == OutboundMessage.Channel.EMAIL and message.holds_secret:
            # SMTP cannot be asked what it took: a link is not mailed twice. The person can ask for another.
            if finish_message(message, Status.FAILED, claimed_at=claim, last_error=error[:500], **lost):
                logger.warning("outbound message %s: no answer from the mail server; not sent again", message.pk)
                metrics.count(metrics.OUTBOX_DELIVERIES, message.channel, "failed")
            return Delivery(message)
        if message.channel == OutboundMessage.Channel.EMAIL:
            lost = {}  # a notice without a secret may come twice rather than not at all
        return _retry_or_fail(message, claim, error, **lost)
    except TransientGatewayError as exc:
        metrics.count(metrics.OUTBOX_PROVIDER_ERRORS, message.channel, "transient")
        return _retry_or_fail(message, claim, str(exc))
    except PermanentGatewayError as exc:
        metrics.count(metrics.OUTBOX_PROVIDER_ERRORS, message.channel, "permanent")
        if finish_message(message, Status.FAILED, claimed_at=claim, last_error=str(exc)[:500]):
            logger.warning("outbound message %s refused by the provider", message.pk)
            metrics.count(metrics.OUTBOX_DELIVERIES, message.channel, "failed")
        return Delivery(message)
    resolved = {"unknown_outcome_at": None} if unknown_since is not None else {}
    sent = finish_message(
        message,
        Status.SENT,
        claimed_at=claim,
        provider_id=provider_id or "",
        sent_at=timezone.now(),
        last_error="",
        **resolved,
    )
    if sent:
        metrics.count(metrics.OUTBOX_DELIVERIES, message.channel, "sent")
    return Delivery(message)
