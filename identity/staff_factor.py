"""Phishing-resistant sign-in for staff (WA-05).

From ``STAFF_PHISHING_RESISTANT_FROM`` (a date, the start of that day in ``TIME_ZONE``) the staff admin lets in only
a session verified with a phishing-resistant factor: a WebAuthn credential, a security key or a passkey. Everyone the
admin serves is covered (it serves only staff accounts: help-desk agents, auditors, superusers). Before the date, or
when it is unset, nobody is refused; with a date set, staff who signed in with a typed code are nudged until then.

Which device verified the session is django-otp's to say: ``OTPMiddleware`` sets ``request.user.otp_device`` from
the persistent id that ``django_otp.login`` keeps in the session. Which factor resists phishing is the device's to
say (``phishing_resistant``, see :class:`identity.factors.SecondFactor`); this module never names a device model, so
``identity`` still imports nothing of the devices app.
"""

from datetime import date, datetime, time

from django.conf import settings
from django.utils import formats, timezone
from django_otp import devices_for_user

from . import audit
from .events import VALUE_WORDS


def enforced_from() -> datetime | None:
    """When the rule starts: the start of ``STAFF_PHISHING_RESISTANT_FROM`` in the server's time zone, or None when
    the setting is empty. An unreadable date raises ``ValueError`` (``manage.py check`` reports it, identity.E013).
    """
    value = (settings.STAFF_PHISHING_RESISTANT_FROM or "").strip()
    if not value:
        return None
    return timezone.make_aware(datetime.combine(date.fromisoformat(value), time.min))


def in_force(now: datetime | None = None) -> bool:
    start = enforced_from()
    return start is not None and (now or timezone.now()) >= start


def start_words() -> str:
    """The date as a person reads it: "1 March 2027"."""
    start = enforced_from()
    return formats.date_format(start, "j F Y") if start else ""


def session_device(user):
    """The device that verified this session (django-otp's ``user.otp_device``), or None."""
    return getattr(user, "otp_device", None)


def resists_phishing(device) -> bool:
    """Whether ``device`` (None: no device) is a phishing-resistant factor; the one reading of the rule."""
    return bool(getattr(device, "phishing_resistant", False))


def signed_in_phishing_resistant(user) -> bool:
    return resists_phishing(session_device(user))


def phishing_resistant_devices(user) -> list:
    """The person's confirmed phishing-resistant devices, through django-otp's own listing of every device model."""
    return [device for device in devices_for_user(user, confirmed=True) if resists_phishing(device)]


def may_add_key(user, *, session_device) -> bool:
    """Whether ``user``, in a session verified with ``session_device`` (:func:`session_device`), may bind another
    WebAuthn credential to themselves: a staff account that holds a phishing-resistant device already does so only
    from a session verified with one of those, or a typed code would buy a key the admin accepts."""
    return not (user.is_staff and not resists_phishing(session_device) and phishing_resistant_devices(user))


def _admin_user(user) -> bool:
    # The admin's own test (AdminSite.has_permission), and a session that passed a second factor (SES-09).
    return bool(user.is_active and user.is_staff and user.is_verified())


def refuses(user, now: datetime | None = None) -> bool:
    """Whether the admin turns ``user`` away now for the factor they signed in with: the rule is in force, they are a
    verified staff account, and the device that verified the session is not phishing-resistant."""
    return in_force(now) and _admin_user(user) and not signed_in_phishing_resistant(user)


def needs_nudge(user, now: datetime | None = None) -> bool:
    """Whether ``user`` should be told, in the admin, to move to a security key or passkey before the date: the date
    is set and still ahead, and this session was verified with a typed code."""
    start = enforced_from()
    return (
        start is not None
        and (now or timezone.now()) < start
        and _admin_user(user)
        and not signed_in_phishing_resistant(user)
    )


def factor_words(device) -> str:
    """The factor a session was verified with, in words: "the authenticator app", "a code by text or call"."""
    name = getattr(device, "factor_name", "")
    return VALUE_WORDS["factor"].get(name, "a code")


def record_admin_refusal(user, *, path: str, ip: str | None) -> None:
    """Audit one refusal of ``user`` by the admin (WA-05, AC-06): which factor verified the session and which page
    they asked for (the path only, never its query). The caller has checked :func:`refuses`."""
    device = session_device(user)
    audit.record(
        "admin.refused_factor",
        actor=user,
        subject=user,
        ip=ip,
        details={"factor": getattr(device, "factor_name", ""), "path": path.split("?", 1)[0][:200]},
    )
