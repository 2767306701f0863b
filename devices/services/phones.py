"""Phone numbers: ownership checks, enabling texts and calls, and sign-in codes (SMS-02, SMS-06..08).

Every function is one whole state change (rows, audit event, outbound message in one transaction); callers
pass plain values (``actor``, ``ip``), never a request; refusals raise ``ValidationError`` with a text from
:mod:`devices.errors`.
"""

from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from phonenumber_field.phonenumber import PhoneNumber

from identity import audit
from identity import errors as identity_errors
from identity.models import User

from .. import errors, outbox, phone_codes
from ..kinds import kind_of
from ..models import (
    PhoneDevice,
    PhoneVerification,
    Registration,
)
from ..phone_numbers import check_reachable
from .common import (
    lock_registration,
    phone_device_name,
    require_pending,
    require_recent_verification,
    require_setup_open,
)
from .notices import notify_person
from .phone_limits import check_send_allowed


def _render_code_message(channel: str, code: str) -> str:
    template = (
        "messages/phone_code_voice.txt" if channel == PhoneVerification.Channel.VOICE else "messages/phone_code_sms.txt"
    )
    return outbox.render_text(
        template,
        {
            "code": code,
            "spoken_code": ", ".join(code),
            "institution": settings.INSTITUTION_NAME,
            "minutes": int(settings.PHONE_CODE_TTL.total_seconds() // 60),
        },
    ).strip()


def _issue_phone_code(
    *,
    user: User,
    number: PhoneNumber,
    channel: str,
    purpose: str,
    registration: Registration | None = None,
    device: PhoneDevice | None = None,
) -> PhoneVerification:
    """Check the limits, retire the open code, and write a new code with its outbound message.

    Runs inside the caller's transaction; the person's row is locked so two
    requests cannot both slip under a limit.
    """
    check_reachable(number)
    locked_user = User.objects.select_for_update().get(pk=user.pk)
    if purpose == PhoneVerification.Purpose.SIGNIN and locked_user.is_locked:
        # A locked account gets no codes: they could not be used, and each one costs money and annoys.
        raise ValidationError(
            identity_errors.ACCOUNT_LOCKED.format(help_desk=settings.HELP_DESK_CONTACT), code="locked"
        )
    check_send_allowed(user=user, number=number, own_factor=device is not None and device.confirmed)
    now = timezone.now()
    open_rows = PhoneVerification.objects.filter(purpose=purpose, consumed_at=None, superseded_at=None)
    open_rows = open_rows.filter(device=device) if device is not None else open_rows.filter(registration=registration)
    open_rows.update(superseded_at=now)  # a resend invalidates the old code (SMS-06)
    code = phone_codes.new_code()
    verification = PhoneVerification(
        user=user,
        registration=registration,
        device=device,
        number=number,
        purpose=purpose,
        channel=channel,
        expires_at=now + settings.PHONE_CODE_TTL,
    )
    phone_codes.seal(verification, code)
    verification.message = outbox.queue_phone_message(
        user=user,
        channel=channel,
        number=str(number),
        body=_render_code_message(channel, code),
        template=f"phone_code_{purpose}",
        expires_at=verification.expires_at,
    )
    verification.save()
    return verification


def send_phone_code(
    registration: Registration,
    *,
    channel: str,
    actor: User,
    verified_at: datetime | None = None,
    ip: str | None = None,
) -> PhoneVerification:
    """Text or call a code to the registration's number, to prove it (wizard) or to turn on phone codes.

    For a pending registration this is the wizard's ownership check; for an
    active one it binds texts and calls as a factor, which needs a recent
    second factor (SMS-08, BND-01). Limits, allowed countries and number types
    are checked before anything is queued (SMS-06, SMS-07). Audits ``phone.code_sent``.
    """
    kind = kind_of(registration)
    if channel not in kind.phone_channels:
        raise ValidationError(errors.PHONE_CHANNEL_NOT_ALLOWED, code="channel")
    if registration.status == Registration.Status.ACTIVE:
        if registration.phone_verified_at:
            raise ValidationError(errors.PHONE_ALREADY_VERIFIED, code="verified")
        require_recent_verification(registration.user, verified_at)
        purpose = PhoneVerification.Purpose.ENABLE
    else:
        require_pending(registration)
        purpose = PhoneVerification.Purpose.OWNERSHIP
    if not registration.phone_number:
        raise ValidationError(errors.STEP_OUT_OF_ORDER, code="order")
    with transaction.atomic():
        registration = lock_registration(registration)
        verification = _issue_phone_code(
            user=registration.user,
            number=registration.phone_number,
            channel=channel,
            purpose=purpose,
            registration=registration,
        )
        audit.record(
            "phone.code_sent",
            actor=actor,
            subject=registration.user,
            ip=ip,
            details={
                "registration": registration.pk,
                "channel": channel,
                "purpose": purpose,
                "phone": registration.masked_phone_number,
            },
        )
    return verification


def confirm_phone_code(
    registration: Registration, *, code: str, actor: User, verified_at: datetime | None, ip: str | None = None
) -> Registration:
    """Accept the code sent to the registration's number: the number is proven.

    Proving a number binds it, or leads to binding it, so it needs a recent second factor (BND-01, SMS-08).

    Single-use, expiring, a few attempts (SMS-02). In the wizard this completes
    the ownership check (and finishes a landline, which has nothing else to
    set up); on an active mobile it turns on codes by text and call. Audits
    ``phone.verified`` and, when a factor is bound, ``device.bound``.
    """
    require_recent_verification(registration.user, verified_at)
    require_setup_open(registration.user, registration=registration)
    purpose = (
        PhoneVerification.Purpose.ENABLE
        if registration.status == Registration.Status.ACTIVE
        else PhoneVerification.Purpose.OWNERSHIP
    )
    failure = None
    with transaction.atomic():
        registration = lock_registration(registration)
        if purpose == PhoneVerification.Purpose.OWNERSHIP:
            require_pending(registration)
        verification = (
            PhoneVerification.objects.select_for_update()
            .filter(registration=registration, purpose=purpose, consumed_at=None, superseded_at=None)
            .order_by("-created_at")
            .first()
        )
        if verification is None or not verification.is_open:
            raise ValidationError(errors.PHONE_NO_OPEN_CODE, code="no_code")
        if not phone_codes.code_matches(verification, code):
            verification.attempts += 1
            verification.save(update_fields=["attempts"])
            audit.record(
                "phone.code_rejected",
                actor=actor,
                subject=registration.user,
                ip=ip,
                details={"registration": registration.pk, "attempts": verification.attempts},
            )
            # Committed on purpose: the attempt counts even though we refuse.
            failure = ValidationError(
                errors.PHONE_WRONG_CODE if verification.is_open else errors.PHONE_NO_OPEN_CODE, code="wrong_code"
            )
        else:
            _accept_phone_verification(registration, verification, actor=actor, ip=ip)
    if failure:
        raise failure
    return registration


def _accept_phone_verification(
    registration: Registration, verification: PhoneVerification, *, actor: User, ip: str | None
) -> None:
    now = timezone.now()
    verification.consumed_at = now
    verification.save(update_fields=["consumed_at"])
    kind = kind_of(registration)
    finishes_setup = registration.status == Registration.Status.PENDING and not kind.has_app
    binds_now = registration.status == Registration.Status.ACTIVE or finishes_setup
    device = registration.phone_device
    if device is None:
        can_text = "sms" in kind.phone_channels
        device = PhoneDevice.objects.create(
            user=registration.user,
            name=phone_device_name(registration.display_name, can_text=can_text),
            number=registration.phone_number,
            can_text=can_text,
            confirmed=binds_now,
        )
        registration.phone_device = device
    elif binds_now:
        PhoneDevice.objects.filter(pk=device.pk).update(confirmed=True)
    registration.phone_verified_at = now
    fields = ["phone_device", "phone_verified_at", "updated_at"]
    if finishes_setup:
        registration.status = Registration.Status.ACTIVE
        registration.activated_at = now
        registration.expires_at = None
        fields += ["status", "activated_at", "expires_at"]
    registration.save(update_fields=fields)
    audit.record(
        "phone.verified",
        actor=actor,
        subject=registration.user,
        ip=ip,
        details={"registration": registration.pk, "channel": verification.channel, "purpose": verification.purpose},
    )
    if binds_now:
        audit.record(
            "device.bound",
            actor=actor,
            subject=registration.user,
            ip=ip,
            details={"registration": registration.pk, "kind": registration.kind, "factor": device.factor_name},
        )
        notify_person(registration.user, event="device.bound", device_name=registration.display_name)


def send_signin_code(device: PhoneDevice, *, channel: str, ip: str | None = None) -> PhoneVerification:
    """Text or call a sign-in code to a confirmed phone device (the person has passed the password step).

    Same limits as every send (SMS-06, SMS-07); a resend invalidates the old
    code. Audits ``signin.code_sent``.
    """
    if not device.confirmed:
        raise ValidationError(errors.NOT_ACTIVE, code="not_active")
    if channel not in device.challenge_channels:
        raise ValidationError(errors.PHONE_CHANNEL_NOT_ALLOWED, code="channel")
    with transaction.atomic():
        verification = _issue_phone_code(
            user=device.user,
            number=device.number,
            channel=channel,
            purpose=PhoneVerification.Purpose.SIGNIN,
            device=device,
        )
        audit.record(
            "signin.code_sent",
            actor=device.user,
            subject=device.user,
            ip=ip,
            details={"device": device.persistent_id, "channel": channel, "phone": device.masked_number},
        )
    return verification
