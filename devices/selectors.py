"""Read-only queries shared by pages, the admin and reports."""

import base64
import io

import qrcode
import qrcode.image.svg
from django.conf import settings
from django.db.models import Exists, Min, OuterRef, Q, QuerySet
from django.urls import reverse
from django.utils import timezone
from two_factor.utils import get_otpauth_url

from . import errors, kinds
from .kinds import KINDS, kind_of
from .models import (
    AuthenticatorAppDevice,
    BackupCodeDevice,
    OutboundMessage,
    PhoneDevice,
    PhoneVerification,
    Registration,
    WorkingRegistration,
)

# The wizard's page for each step, by URL name.
STEP_URLS = {
    kinds.PHONE: "devices:phone",
    kinds.VERIFY_PHONE: "devices:verify_phone",
    kinds.PLATFORM: "devices:platform",
    kinds.INSTALL: "devices:install",
    kinds.ACTIVATE: "devices:activate",
    kinds.SECURITY_KEY: "devices:security_key",
    kinds.PASSKEY: "devices:passkey",
}


def next_step_url(registration: Registration) -> str:
    """The wizard page of the registration's first step still to do (its end, when none is): "continue" links."""
    step = kinds.next_missing_step(registration)
    return reverse(STEP_URLS[step] if step else "devices:success", kwargs={"pk": registration.pk})


# --- Enrolled: the one rule ------------------------------------------------------------------------------------
#
# A person has enrolled when a device of theirs is in use (active, or mid-reactivation with the old phone still
# working) and its factor is confirmed: an app, a phone (texts or calls), a security key or a passkey. Backup codes
# and the help desk's bypass codes are not a device: a set of backup codes is a fallback made after enrolling, and
# bypass codes last an hour; a person holding only those has lost their device and still has to set one up, so
# the campaigns keep reminding them and count them as not enrolled. (The VPN still asks them for a code: the
# password alone is let in only for people with no code to give, see vpn.) A pending or retired registration
# signs no one in. The rule is written once, as a database view (``WorkingRegistration``, migration 0012): the
# reminders, the VPN's campaign policy and the progress page read it here, the reports' SQL joins the same view,
# and campaigns/tests/test_enrolled_rule.py holds every reader to it.


def working_registrations(person_ref: str = "person_id") -> QuerySet[WorkingRegistration]:
    """The registrations of the person named by ``person_ref`` (an outer column) that make them enrolled."""
    return WorkingRegistration.objects.filter(user_id=OuterRef(person_ref))


def enrolled(person_ref: str = "person_id") -> Exists:
    """A condition: the person named by ``person_ref`` (an outer column) has enrolled. One ``EXISTS`` over the
    view, by the registrations' (user, status) index."""
    return Exists(working_registrations(person_ref))


def has_enrolled(user) -> bool:
    """Whether ``user`` has enrolled (one query)."""
    return WorkingRegistration.objects.filter(user_id=user.pk).exists()


def app_to_recover(user) -> Registration | None:
    """The device a recovery link puts a new app in place of: the person's newest phone or tablet with an app, in
    use. None: no link can be sent (``devices.services.links.send_recovery_link``), so the desk does not offer one."""
    return (
        Registration.objects.filter(
            user=user,
            status__in=[Registration.Status.ACTIVE, Registration.Status.REACTIVATING],
            kind__in=[kind.key for kind in KINDS.values() if kind.has_app],
        )
        .order_by("-activated_at")
        .first()
    )


def registrations_for_user(user) -> QuerySet[Registration]:
    """The person's devices for "My devices": active and pending first, then retired history."""
    return (
        Registration.objects.filter(user=user)
        .select_related("app_device", "phone_device", "security_key_device")
        .order_by("status", "-created_at")
    )


def distinct_default_name(user, kind: str, platform: str = "", *, exclude: int | None = None) -> str:
    """The kind's default name, numbered when another of the person's devices in use or being set up has it.

    A second Android tablet becomes "Android tablet 2", so three tablets show as three different rows.
    """
    base = KINDS[kind].default_name(platform)
    taken = set(
        Registration.objects.filter(user=user)
        .exclude(status=Registration.Status.RETIRED)
        .exclude(pk=exclude)  # type: ignore[misc]  # pk=None excludes nothing, as meant
        .values_list("label", flat=True)
    )
    number = 1
    name = base
    while name in taken:
        number += 1
        name = f"{base} {number}"
    return name


def active_registration_count(user) -> int:
    return Registration.objects.filter(user=user, status__in=Registration.IN_USE).count()


def phone_change_open(user, *, registration_id: int, pending_app_device_id: int) -> bool:
    """Whether this phone change (the new app device ``pending_app_device_id`` of the person's registration) still
    waits for its first code: not confirmed, cancelled, expired, or begun again with another new secret."""
    return (
        Registration.objects.filter(
            pk=registration_id,
            user=user,
            status=Registration.Status.REACTIVATING,
            pending_app_device_id=pending_app_device_id,
        )
        .filter(Q(reactivation_expires_at=None) | Q(reactivation_expires_at__gt=timezone.now()))
        .exists()
    )


def old_app_works(registration: Registration) -> bool:
    """Whether the app on the phone being replaced still gives working codes (not reported lost)."""
    return AuthenticatorAppDevice.objects.filter(pk=registration.app_device_id, confirmed=True).exists()


def old_phone_words(registration: Registration) -> str:
    """What of the old phone still signs the person in, for a phone change that ends (or expired) unconfirmed: all
    of it, unless it was reported lost (as the change began or while it was under way) and its app switched off."""
    if old_app_works(registration):
        return errors.OLD_PHONE_WORKS
    if PhoneDevice.objects.filter(pk=registration.phone_device_id, confirmed=True).exists():
        return errors.OLD_APP_OFF_TEXTS_WORK.format(number=registration.masked_phone_number)
    return errors.OLD_APP_OFF.format(device=registration.display_name)


def reactivation_expired_words(registration: Registration) -> str:
    old_phone = old_phone_words(registration)
    if old_phone == errors.OLD_PHONE_WORKS:
        return errors.REACTIVATION_EXPIRED
    return errors.REACTIVATION_EXPIRED_OLD_APP_OFF.format(old_phone=old_phone)


def offers_phone_codes(registration: Registration) -> bool:
    """An active device whose number could get codes by text or call once a code sent to it is entered."""
    return (
        registration.status == Registration.Status.ACTIVE
        and bool(registration.phone_number)
        and bool(kind_of(registration).phone_channels)
        and not registration.phone_verified_at
    )


def directory_mobile_offer(user) -> str:
    """The directory's mobile number (E.164) the phone step offers ("Is this your number?"), or "" when the
    directory has none or it is already one of the person's devices or factors. Offering it proves nothing: it is
    entered, confirmed and proven as a typed number is."""
    number = user.directory_mobile
    if not number:
        return ""
    in_use = Registration.objects.filter(user=user, status__in=Registration.IN_USE, phone_number=number).exists()
    if in_use or PhoneDevice.objects.filter(user=user, confirmed=True, number=number).exists():
        return ""
    return number


def latest_pending_registration(user) -> Registration | None:
    return (
        Registration.objects.filter(user=user, status=Registration.Status.PENDING, expires_at__gt=timezone.now())
        .order_by("-created_at")
        .first()
    )


def _awaiting_secret(registration: Registration) -> str:
    """The base32 secret of the app device waiting for its first code; never that of a confirmed device (ACT-06)."""
    device = registration.awaiting_app_device
    if device is None or device.confirmed:
        raise ValueError("no pending secret to show")
    return base64.b32encode(device.secret_bytes()).decode().rstrip("=")


def otpauth_uri(registration: Registration) -> str:
    """The otpauth:// URI of a pending app secret. Only for the owner's own, no-store pages (ACT-04)."""
    secret = _awaiting_secret(registration)
    return get_otpauth_url(
        accountname=registration.user.username,
        secret=secret,
        issuer=settings.INSTITUTION_NAME,
        digits=settings.TOTP_DIGITS,
    )


def manual_entry_secret(registration: Registration) -> str:
    """The base32 secret in groups of four, for typing into an app by hand."""
    secret = _awaiting_secret(registration)
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def qr_svg(data: str) -> bytes:
    """An SVG QR code rendered on our server; nothing leaves for a third party (ACT-02, ACT-04)."""
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathFillImage, box_size=10, border=4)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue()


def latest_phone_message(registration: Registration) -> OutboundMessage | None:
    """The outbound message of the newest code sent for this registration, to show whether it went out."""
    verification = (
        PhoneVerification.objects.filter(registration=registration, superseded_at=None, consumed_at=None)
        .select_related("message")
        .order_by("-created_at")
        .first()
    )
    return verification.message if verification else None


def backup_code_status(user) -> dict:
    """How many backup codes of the current set are left, when the set was made, and which set it is (``set_id``,
    "" for none: what the form for a new set says it replaces)."""
    device = current_backup_code_set(user)
    if device is None:
        return {"has_codes": False, "unused": 0, "created_at": None, "set_id": ""}
    return {
        "has_codes": True,
        "unused": device.unused_count,
        "created_at": device.created_at,
        "set_id": device.persistent_id,
    }


def current_backup_code_set(user) -> BackupCodeDevice | None:
    return BackupCodeDevice.objects.filter(user=user, confirmed=True).order_by("-created_at").first()


def oldest_queued_message_at():
    """When the longest-waiting message still queued (never sent, perhaps retrying) was written, or None.

    One query on the status index: only the queued rows are read, however long the sent history. Bulk messages (a
    campaign's reminders) are left out: thousands of them waiting their turn is their normal state.
    """
    return OutboundMessage.objects.filter(status=OutboundMessage.Status.QUEUED, bulk=False).aggregate(
        oldest=Min("created_at")
    )["oldest"]
