"""How long working records are kept: expired challenges, old phone codes and sent messages are deleted.

What stays for good is the audit log and every device and registration (BND-04). These rows only serve a
ceremony, a send limit or a help-desk question for a while, and would otherwise grow without end; the
outbox rows also hold each recipient's address. A beat task calls :func:`purge_expired_records` daily.
"""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from identity import audit

from .models import OutboundMessage, PhoneVerification, WebAuthnChallenge

# A send limit looks one day back (SMS-06): a phone code is never deleted sooner, whatever the setting says.
_SEND_LIMIT_WINDOW = timedelta(days=1)
_FINISHED = [OutboundMessage.Status.SENT, OutboundMessage.Status.FAILED, OutboundMessage.Status.EXPIRED]


def purge_expired_records(now=None) -> dict[str, int]:
    """Delete what is past its keeping time; return how many rows of each kind went. Safe to run again."""
    now = now or timezone.now()
    code_days = timedelta(days=settings.PHONE_CODE_RETENTION_DAYS)
    purged = {
        "webauthn_challenges": _delete(WebAuthnChallenge.objects.filter(expires_at__lt=now - timedelta(hours=1))),
        "phone_verifications": _delete(
            PhoneVerification.objects.filter(
                created_at__lt=now - max(code_days, _SEND_LIMIT_WINDOW), expires_at__lt=now
            )
        ),
        # Queued and sending rows are never touched, however old: they are still owed a send or an expiry.
        "outbound_messages": _delete(
            OutboundMessage.objects.filter(
                status__in=_FINISHED, created_at__lt=now - timedelta(days=settings.OUTBOX_RETENTION_DAYS)
            )
        ),
    }
    if any(purged.values()):
        audit.record("retention.purged", details=purged)
    return purged


def _delete(rows, batch: int = 1000) -> int:
    # In batches: Django loads the rows it deletes (to clear the links to them), and a first purge may be large.
    deleted = 0
    while ids := list(rows.values_list("pk", flat=True)[:batch]):
        with transaction.atomic():
            deleted += rows.model.objects.filter(pk__in=ids).delete()[0]
    return deleted
