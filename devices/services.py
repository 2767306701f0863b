"""State changes of devices: enrollment, activation, activation links, rename, retire.

Every function here is one whole state change: its rows, its audit event and
any outbound message are written in one transaction. Callers pass plain
values (``actor``, ``ip``), never a request. Refusals raise
``django.core.exceptions.ValidationError`` with a text from
:mod:`devices.errors`.
"""

import hashlib
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from identity import audit
from identity import errors as identity_errors

from . import crypto, errors, outbox, phone_codes
from .kinds import KINDS, kind_of
from .models import (
    ActivationLink,
    AuthenticatorAppDevice,
    PhoneDevice,
    PhoneVerification,
    Registration,
    SecurityKeyDevice,
)
from .phone_numbers import check_personal_number, check_reachable

SECRET_BYTES = 20  # 160 bits (OTP-07)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _lock(registration: Registration) -> Registration:
    return Registration.objects.select_for_update().get(pk=registration.pk)


def app_device_name(label: str) -> str:
    return f"{label}: app"[:64]


def security_key_device_name(label: str) -> str:
    return f"{label}: security key"[:64]


def phone_device_name(label: str, *, can_text: bool) -> str:
    return f"{label}: {'text or call' if can_text else 'call'}"[:64]


def _has_active_devices(user) -> bool:
    return Registration.objects.filter(user=user, status=Registration.Status.ACTIVE).exists()


def require_recent_verification(user, verified_at: datetime | None) -> None:
    """Binding or removing a factor needs a second factor within REAUTH_MAX_AGE_SECONDS (BND-01).

    A person with no active device yet (first enrollment) is exempt.
    """
    if not _has_active_devices(user):
        return
    max_age = timedelta(seconds=settings.REAUTH_MAX_AGE_SECONDS)
    if verified_at is None or timezone.now() - verified_at > max_age:
        raise ValidationError(errors.REAUTH_REQUIRED, code="reauth_required")


def _require_pending(registration: Registration) -> None:
    if registration.status != Registration.Status.PENDING:
        raise ValidationError(errors.NOT_PENDING, code="not_pending")
    if registration.is_pending_expired:
        raise ValidationError(errors.PENDING_EXPIRED, code="expired")


def start_enrollment(user, *, kind: str, verified_at: datetime | None, ip: str | None = None) -> Registration:
    """Begin registering a device of ``kind`` and return the pending registration.

    Reuses the person's unexpired pending registration of the same kind, so a
    second submit of the same form changes nothing. Audits ``enrollment.started``.
    Raises ``ValidationError`` for an unknown or unavailable kind, or when the
    person has devices and no recent second factor (BND-01).
    """
    device_kind = KINDS.get(kind)
    if device_kind is None or not device_kind.available:
        raise ValidationError(errors.KIND_NOT_AVAILABLE, code="kind")
    require_recent_verification(user, verified_at)
    with transaction.atomic():
        existing = (
            Registration.objects.select_for_update()
            .filter(user=user, kind=kind, status=Registration.Status.PENDING, expires_at__gt=timezone.now())
            .order_by("-created_at")
            .first()
        )
        if existing:
            return existing
        registration = Registration.objects.create(
            user=user,
            kind=kind,
            label=device_kind.label,
            expires_at=timezone.now() + settings.PENDING_REGISTRATION_TTL,
        )
        audit.record(
            "enrollment.started",
            actor=user,
            subject=user,
            ip=ip,
            details={"registration": registration.pk, "kind": kind},
        )
    return registration


def set_phone_number(registration: Registration, *, phone_number, actor, ip: str | None = None) -> Registration:
    """Store the (already normalized, E.164) number on a pending registration whose kind has one."""
    if not kind_of(registration).needs_phone_number:
        raise ValidationError(errors.NO_PHONE_FOR_KIND, code="kind")
    # SMS-07: a number we could never text or call is refused here, before anything can be queued. A phone
    # with an app may be abroad: its country is checked only when a code is sent to it.
    (check_personal_number if kind_of(registration).has_app else check_reachable)(phone_number)
    with transaction.atomic():
        registration = _lock(registration)
        _require_pending(registration)
        if registration.phone_number != phone_number:
            registration.phone_number = phone_number
            # A new number is a new authenticator: any proof of the old one no longer counts (SMS-08), and
            # the (never confirmed) device that would text the old number must not be bound at activation.
            registration.phone_verified_at = None
            registration.phone_device = None
            registration.save(update_fields=["phone_number", "phone_verified_at", "phone_device", "updated_at"])
            PhoneVerification.objects.filter(registration=registration, consumed_at=None, superseded_at=None).update(
                superseded_at=timezone.now()
            )
            audit.record(
                "enrollment.phone_entered",
                actor=actor,
                subject=registration.user,
                ip=ip,
                details={"registration": registration.pk, "phone": registration.masked_phone_number},
            )
    return registration


def set_platform(registration: Registration, *, platform: str, actor) -> Registration:
    """Record which platform the phone or tablet runs; it decides the install instructions."""
    if not kind_of(registration).has_app:
        raise ValidationError(errors.NO_APP_FOR_KIND, code="kind")
    if platform not in Registration.Platform.values:
        raise ValidationError("Choose iPhone, Android or Other.", code="platform")
    with transaction.atomic():
        registration = _lock(registration)
        _require_pending(registration)
        registration.platform = platform
        registration.label = f"{registration.get_platform_display()} ({kind_of(registration).label.lower()})"
        registration.save(update_fields=["platform", "label", "updated_at"])
    return registration


def issue_app_secret(registration: Registration, *, actor, ip: str | None = None) -> Registration:
    """Mark the app as installed and give the registration its pending authenticator secret.

    The secret is 160 random bits (OTP-07), encrypted at rest (OTP-08), and the
    device stays unconfirmed, so it is never offered at sign-in (ACT-04) until
    :func:`confirm_activation`. Calling it again keeps the same pending secret.
    """
    if not kind_of(registration).has_app:
        raise ValidationError(errors.NO_APP_FOR_KIND, code="kind")
    with transaction.atomic():
        registration = _lock(registration)
        _require_pending(registration)
        if not registration.platform:
            raise ValidationError(errors.STEP_OUT_OF_ORDER, code="order")
        if registration.app_device_id is None:
            device = AuthenticatorAppDevice.objects.create(
                user=registration.user,
                name=app_device_name(registration.display_name),
                confirmed=False,
                encrypted_secret=crypto.encrypt(secrets.token_bytes(SECRET_BYTES)),
            )
            registration.app_device = device
            audit.record(
                "enrollment.secret_issued",
                actor=actor,
                subject=registration.user,
                ip=ip,
                details={"registration": registration.pk, "device": device.persistent_id},
            )
        registration.app_installed_at = registration.app_installed_at or timezone.now()
        registration.save(update_fields=["app_device", "app_installed_at", "updated_at"])
    return registration


def confirm_activation(registration: Registration, *, code: str, actor, ip: str | None = None) -> Registration:
    """Bind the pending app device once the person enters a code it made.

    Verification consumes the code (OTP-04) and is throttled by django-otp; a
    wrong code is audited and raises ``ValidationError`` with the failure kept.
    A second confirm of an already active registration returns it unchanged.
    Audits ``device.bound``, once more for texts and calls when the wizard proved the number.
    """
    registration = Registration.objects.select_related("app_device").get(pk=registration.pk)
    if registration.status == Registration.Status.ACTIVE:
        return registration
    _require_pending(registration)
    device = registration.app_device
    if device is None:
        raise ValidationError(errors.STEP_OUT_OF_ORDER, code="order")
    allowed, _ = device.verify_is_allowed()
    if not allowed:
        raise ValidationError(errors.CODE_THROTTLED, code="throttled")
    if not device.verify_token(code):
        registration.refresh_from_db(fields=["status"])
        if registration.status == Registration.Status.ACTIVE:
            # A double submit: the other request bound the device with this very code.
            return registration
        audit.record(
            "enrollment.code_rejected",
            actor=actor,
            subject=registration.user,
            ip=ip,
            details={"registration": registration.pk},
        )
        raise ValidationError(errors.WRONG_CODE, code="wrong_code")
    with transaction.atomic():
        registration = _lock(registration)
        if registration.status == Registration.Status.ACTIVE:
            return registration
        _require_pending(registration)
        now = timezone.now()
        AuthenticatorAppDevice.objects.filter(pk=device.pk).update(
            confirmed=True, name=app_device_name(registration.display_name)
        )
        if registration.phone_device_id:
            # The number was proven in the wizard; texts and calls become usable with the app.
            PhoneDevice.objects.filter(pk=registration.phone_device_id).update(
                confirmed=True, name=phone_device_name(registration.display_name, can_text=True)
            )
        registration.status = Registration.Status.ACTIVE
        registration.activated_at = now
        registration.expires_at = None
        registration.save(update_fields=["status", "activated_at", "expires_at", "updated_at"])
        ActivationLink.objects.filter(registration=registration, consumed_at=None, revoked_at=None).update(
            revoked_at=now
        )
        audit.record(
            "device.bound",
            actor=actor,
            subject=registration.user,
            ip=ip,
            details={"registration": registration.pk, "kind": registration.kind, "factor": device.factor_name},
        )
        if registration.phone_device_id:
            audit.record(
                "device.bound",
                actor=actor,
                subject=registration.user,
                ip=ip,
                details={"registration": registration.pk, "kind": registration.kind, "factor": PhoneDevice.factor_name},
            )
    return registration


def send_activation_link(registration: Registration, *, actor, ip: str | None = None) -> ActivationLink:
    """Email the person a single-use link to open on the phone (ACT-01..03).

    The token (256 bits) is only in the email; the database keeps its hash.
    A new link revokes the earlier ones of this registration. The URL is built
    from ``SITE_URL``, never from the request's Host. Audits ``activation_link.sent``.
    Raises when the person has no email address or asked less than a minute ago.
    """
    user = registration.user
    if not user.email:
        raise ValidationError(errors.NO_EMAIL, code="no_email")
    with transaction.atomic():
        registration = _lock(registration)
        _require_pending(registration)
        if registration.app_device_id is None:
            raise ValidationError(errors.STEP_OUT_OF_ORDER, code="order")
        now = timezone.now()
        recent = ActivationLink.objects.filter(
            registration=registration,
            created_at__gt=now - timedelta(seconds=settings.ACTIVATION_LINK_RESEND_SECONDS),
        )
        if recent.exists():
            raise ValidationError(errors.LINK_RESEND_TOO_SOON, code="too_soon")
        ActivationLink.objects.filter(registration=registration, consumed_at=None, revoked_at=None).update(
            revoked_at=now
        )
        token = secrets.token_urlsafe(32)
        expires_at = min(
            now + settings.ACTIVATION_LINK_TTL, registration.expires_at or now + settings.ACTIVATION_LINK_TTL
        )
        link = ActivationLink.objects.create(
            token_hash=hash_token(token),
            user=user,
            registration=registration,
            expires_at=expires_at,
        )
        url = settings.SITE_URL + reverse("devices:activation_link", kwargs={"token": token})
        body = render_to_string(
            "emails/activation_link.txt",
            {"user": user, "url": url, "expires_at": expires_at, "institution": settings.INSTITUTION_NAME},
        )
        outbox.queue_email(
            user=user,
            to=user.email,
            subject=f"{settings.INSTITUTION_NAME}: activate your authenticator app",
            body=body,
            template="activation_link",
            holds_secret=True,
            expires_at=expires_at,
        )
        audit.record(
            "activation_link.sent",
            actor=actor,
            subject=user,
            ip=ip,
            details={"registration": registration.pk, "link": link.pk},
        )
    return link


def find_activation_link(token: str) -> ActivationLink:
    """The usable link for ``token``, or ``ValidationError`` (used, revoked, expired or unknown look alike)."""
    link = (
        ActivationLink.objects.select_related("user", "registration").filter(token_hash=hash_token(token or "")).first()
    )
    if link is None or not link.is_usable or link.registration.status != Registration.Status.PENDING:
        raise ValidationError(errors.LINK_NOT_VALID, code="invalid")
    return link


def open_activation_link(link: ActivationLink, *, password: str, ip: str | None = None) -> ActivationLink:
    """Consume the link once the person gives their password; only then may the secret be shown.

    A wrong password is counted and audited; after ACTIVATION_LINK_MAX_PASSWORD_ATTEMPTS
    the link is revoked. Raises ``ValidationError`` on every refusal.
    """
    with transaction.atomic():
        link = ActivationLink.objects.select_for_update().select_related("user", "registration").get(pk=link.pk)
        if not link.is_usable or link.registration.status != Registration.Status.PENDING:
            raise ValidationError(errors.LINK_NOT_VALID, code="invalid")
        if not link.user.check_password(password or ""):
            link.password_failures += 1
            revoke = link.password_failures >= settings.ACTIVATION_LINK_MAX_PASSWORD_ATTEMPTS
            if revoke:
                link.revoked_at = timezone.now()
            link.save(update_fields=["password_failures", "revoked_at"])
            audit.record(
                "activation_link.password_failed",
                subject=link.user,
                ip=ip,
                details={"link": link.pk, "failures": link.password_failures, "revoked": revoke},
            )
            # Committed on purpose: the failure must count even though we refuse.
            failure = ValidationError(
                errors.LINK_TOO_MANY_PASSWORDS if revoke else errors.LINK_WRONG_PASSWORD,
                code="revoked" if revoke else "password",
            )
        else:
            failure = None
            link.consumed_at = timezone.now()
            link.save(update_fields=["consumed_at"])
            audit.record(
                "activation_link.used",
                actor=link.user,
                subject=link.user,
                ip=ip,
                details={"link": link.pk, "registration": link.registration_id},
            )
    if failure:
        raise failure
    return link


def rename_registration(registration: Registration, *, label: str, actor, ip: str | None = None) -> Registration:
    label = (label or "").strip()
    if not 1 <= len(label) <= 64:
        raise ValidationError(errors.LABEL_INVALID, code="label")
    with transaction.atomic():
        registration = _lock(registration)
        if registration.status != Registration.Status.ACTIVE:
            raise ValidationError(errors.NOT_ACTIVE, code="not_active")
        old = registration.label
        registration.label = label
        registration.save(update_fields=["label", "updated_at"])
        if registration.app_device_id:
            AuthenticatorAppDevice.objects.filter(pk=registration.app_device_id).update(name=app_device_name(label))
        if registration.phone_device_id:
            phone = PhoneDevice.objects.get(pk=registration.phone_device_id)
            PhoneDevice.objects.filter(pk=phone.pk).update(name=phone_device_name(label, can_text=phone.can_text))
        if registration.security_key_device_id:
            SecurityKeyDevice.objects.filter(pk=registration.security_key_device_id).update(
                name=security_key_device_name(label)
            )
        audit.record(
            "device.renamed",
            actor=actor,
            subject=registration.user,
            ip=ip,
            details={"registration": registration.pk, "from": old, "to": label},
        )
    return registration


def retire_registration(
    registration: Registration, *, actor, verified_at: datetime | None, reason: str = "removed", ip: str | None = None
) -> Registration:
    """Remove a device from use, keeping its history (BND-04).

    Needs a recent second factor (BND-01) and refuses the person's last active
    device (BND-02). The factor's seed is erased, so the row can never verify
    again. Audits ``device.retired``.
    """
    require_recent_verification(registration.user, verified_at)
    with transaction.atomic():
        registration = _lock(registration)
        if registration.status != Registration.Status.ACTIVE:
            raise ValidationError(errors.NOT_ACTIVE, code="not_active")
        others = (
            Registration.objects.select_for_update()
            .filter(user_id=registration.user_id, status=Registration.Status.ACTIVE)
            .exclude(pk=registration.pk)
        )
        if not others.exists():
            raise ValidationError(errors.LAST_DEVICE, code="last_device")
        registration.status = Registration.Status.RETIRED
        registration.retired_at = timezone.now()
        registration.retired_by = actor if getattr(actor, "pk", None) else None
        registration.save(update_fields=["status", "retired_at", "retired_by", "updated_at"])
        if registration.app_device_id:
            AuthenticatorAppDevice.objects.filter(pk=registration.app_device_id).update(
                confirmed=False, encrypted_secret=""
            )
        if registration.phone_device_id:
            PhoneDevice.objects.filter(pk=registration.phone_device_id).update(confirmed=False)
        if registration.security_key_device_id:
            # The credential id stays, so the same credential can never be bound again (to anyone).
            SecurityKeyDevice.objects.filter(pk=registration.security_key_device_id).update(confirmed=False)
        audit.record(
            "device.retired",
            actor=actor,
            subject=registration.user,
            ip=ip,
            details={"registration": registration.pk, "kind": registration.kind, "reason": reason},
        )
    return registration


# --- Phone numbers: ownership checks, codes by text or call -----------------------------------


def phone_check_required(registration: Registration) -> bool:
    """Whether the wizard makes the person prove the number (seed step 4).

    Always for a landline; for a mobile, when the number is on record here
    already, for anyone, now or in the past.
    """
    check = kind_of(registration).phone_check
    if check == "always":
        return True
    if check == "if_on_record" and registration.phone_number:
        return Registration.objects.filter(phone_number=registration.phone_number).exclude(pk=registration.pk).exists()
    return False


def _render_code_message(channel: str, code: str) -> str:
    template = (
        "messages/phone_code_voice.txt" if channel == PhoneVerification.Channel.VOICE else "messages/phone_code_sms.txt"
    )
    return render_to_string(
        template,
        {
            "code": code,
            "spoken_code": ", ".join(code),
            "institution": settings.INSTITUTION_NAME,
            "minutes": int(settings.PHONE_CODE_TTL.total_seconds() // 60),
        },
    ).strip()


def _issue_phone_code(*, user, number, channel: str, purpose: str, registration=None, device=None) -> PhoneVerification:
    """Check the limits, retire the open code, and write a new code with its outbound message.

    Runs inside the caller's transaction; the person's row is locked so two
    requests cannot both slip under a limit.
    """
    check_reachable(number)
    locked_user = type(user).objects.select_for_update().get(pk=user.pk)
    if purpose == PhoneVerification.Purpose.SIGNIN and locked_user.is_locked:
        # A locked account gets no codes: they could not be used, and each one costs money and annoys.
        raise ValidationError(
            identity_errors.ACCOUNT_LOCKED.format(help_desk=settings.HELP_DESK_CONTACT), code="locked"
        )
    phone_codes.check_send_allowed(user=user, number=number)
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
    actor,
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
        _require_pending(registration)
        purpose = PhoneVerification.Purpose.OWNERSHIP
    if not registration.phone_number:
        raise ValidationError(errors.STEP_OUT_OF_ORDER, code="order")
    with transaction.atomic():
        registration = _lock(registration)
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


def confirm_phone_code(registration: Registration, *, code: str, actor, ip: str | None = None) -> Registration:
    """Accept the code sent to the registration's number: the number is proven.

    Single-use, expiring, a few attempts (SMS-02). In the wizard this completes
    the ownership check (and finishes a landline, which has nothing else to
    set up); on an active mobile it turns on codes by text and call. Audits
    ``phone.verified`` and, when a factor is bound, ``device.bound``.
    """
    purpose = (
        PhoneVerification.Purpose.ENABLE
        if registration.status == Registration.Status.ACTIVE
        else PhoneVerification.Purpose.OWNERSHIP
    )
    failure = None
    with transaction.atomic():
        registration = _lock(registration)
        if purpose == PhoneVerification.Purpose.OWNERSHIP:
            _require_pending(registration)
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


def _accept_phone_verification(registration: Registration, verification: PhoneVerification, *, actor, ip) -> None:
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
