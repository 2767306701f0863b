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
    with transaction.atomic():
        purged = {
            "webauthn_challenges": WebAuthnChallenge.objects.filter(expires_at__lt=now - timedelta(hours=1)).delete()[
                0
            ],
            "phone_verifications": PhoneVerification.objects.filter(
                created_at__lt=now - max(code_days, _SEND_LIMIT_WINDOW), expires_at__lt=now
            ).delete()[0],
            # Queued and sending rows are never touched, however old: they are still owed a send or an expiry.
            "outbound_messages": OutboundMessage.objects.filter(
                status__in=_FINISHED,
                created_at__lt=now - timedelta(days=settings.OUTBOX_RETENTION_DAYS),
            ).delete()[0],
        }
        if any(purged.values()):
            audit.record("retention.purged", details=purged)
    return purged
