"""Notices to the person about changes to their sign-in factors (BND-03)."""

from django.conf import settings
from django.utils import timezone

from identity.models import User

from .. import outbox

NOTICES = {
    "device.bound": "A device was added to your account",
    "device.reactivated": "Your authenticator app was moved to a new phone",
    "device.reported_lost": "A device was reported lost and can no longer be used",
    "device.retired": "A device was removed from your account",
    "backup_codes.generated": "New backup codes were generated",
    "bypass_codes.issued": "The help desk gave you one-time bypass codes to sign in",
    "sessions.ended": "The help desk signed you out everywhere",
    "person.details_changed": "The help desk changed your name, department or email address",
    "person.email_changed": "The email address on your account was changed",
    "account.locked": "Your account was locked after too many wrong codes",
    "account.unlocked": "Your account was unlocked",
    "vpn_access.requested": "You asked for VPN access",
    "vpn_access.approved": "You now have VPN access",
    "vpn_access.revoked": "Your VPN access was ended",
    "security_key.counter_regressed": "A security key gave a sign-in answer that looks copied, and it was refused",
}


def notify_person(user: User, *, event: str, device_name: str = "", to: str = "") -> None:
    """Email the person about a change to their sign-in factors, through the outbox (BND-03, REL-10).

    Email is never a sign-in factor here, so it is always "another channel".
    Call inside the transaction of the change. ``to`` sends it to another of
    the person's addresses (the old one, after an email change). Nothing is
    queued for a person without an email address.
    """
    to = to or user.email
    if not to:
        return
    context = {"what": NOTICES[event], "device_name": device_name, "when": timezone.now()}
    email_person(
        user,
        to=to,
        template="security_notice",
        label=f"notice:{event}",
        subject=NOTICES[event].lower(),
        context=context,
    )


def email_person(
    user: User,
    *,
    template: str,
    subject: str,
    context: dict,
    label: str = "",
    to: str = "",
) -> None:
    """Queue ``emails/<template>.txt``, which holds no secret, to the person (or ``to``) through the outbox, inside
    the caller's transaction, recorded as ``label`` (default: the template's name). The template also gets ``user``,
    ``institution``, ``help_desk`` and ``site_url``; the subject starts with the institution's name."""
    body = outbox.render_text(
        f"emails/{template}.txt",
        {
            "user": user,
            "institution": settings.INSTITUTION_NAME,
            "help_desk": settings.HELP_DESK_CONTACT,
            "site_url": settings.SITE_URL,
            **context,
        },
    )
    outbox.queue_email(
        user=user,
        to=to or user.email,
        subject=f"{settings.INSTITUTION_NAME}: {subject}",
        body=body,
        template=label or template,
        holds_secret=False,
    )
