"""Enrollment: from starting a registration to its confirmed activation (app, phone, landline).

Every function is one whole state change (rows, audit event, outbound message in one transaction); callers
pass plain values (``actor``, ``ip``), never a request; refusals raise ``ValidationError`` with a text from
:mod:`devices.errors`.
"""

import secrets
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from phonenumber_field.phonenumber import PhoneNumber

from identity import audit
from identity.models import User

from .. import crypto, errors, selectors
from ..kinds import KINDS, kind_of, phone_check_required
from ..models import (
    AuthenticatorAppDevice,
    PhoneDevice,
    PhoneVerification,
    Registration,
)
from ..phone_numbers import check_personal_number, check_reachable
from .common import (
    SECRET_BYTES,
    app_device_name,
    lock_registration,
    phone_device_name,
    require_pending,
    require_recent_verification,
    require_setup_open,
    revoke_open_links,
    verify_awaiting_code,
)
from .notices import notify_person


def start_enrollment(
    user: User,
    *,
    kind: str,
    verified_at: datetime | None,
    ip: str | None = None,
    loss_reported_here_at: datetime | None = None,
) -> Registration:
    """Begin registering a device of ``kind`` and return the pending registration.

    Reuses the person's unexpired pending registration of the same kind, so a
    second submit of the same form changes nothing. Audits ``enrollment.started``.
    Raises ``ValidationError`` for an unknown or unavailable kind, or while the
    setup is held after the last factor was lost, except in the session that
    reported it (``loss_reported_here_at``, see :func:`require_setup_open`);
    ``ReauthRequired`` when the person has devices and no recent second factor (BND-01).
    """
    device_kind = KINDS.get(kind)
    if device_kind is None or not device_kind.available:
        raise ValidationError(errors.KIND_NOT_AVAILABLE, code="kind")
    require_recent_verification(user, verified_at)
    require_setup_open(user, reported_here_at=loss_reported_here_at)
    with transaction.atomic():
        # Locking the pending rows locks nothing when there are none yet: two clicks on "Continue" would each
        # make one. The person's row serialises them; the second then finds the first's.
        User.objects.select_for_update().filter(pk=user.pk).first()
        existing = (
            Registration.objects.filter(
                user=user, kind=kind, status=Registration.Status.PENDING, expires_at__gt=timezone.now()
            )
            .order_by("-created_at")
            .first()
        )
        if existing:
            return existing
        registration = Registration.objects.create(
            user=user,
            kind=kind,
            label=selectors.distinct_default_name(user, kind),
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


def set_phone_number(
    registration: Registration,
    *,
    phone_number: PhoneNumber,
    actor: User,
    verified_at: datetime | None,
    ip: str | None = None,
) -> Registration:
    """Store the (already normalized, E.164) number on a pending registration whose kind has one.

    Choosing the number of a new factor is binding it (SMS-08): it needs a recent second factor (BND-01).
    """
    require_recent_verification(registration.user, verified_at)
    if not kind_of(registration).needs_phone_number:
        raise ValidationError(errors.NO_PHONE_FOR_KIND, code="kind")
    # SMS-07: a number we could never text or call is refused here, before anything can be queued. A phone
    # with an app may be abroad: its country is checked only when a code is sent to it.
    (check_personal_number if kind_of(registration).has_app else check_reachable)(phone_number)
    if kind_of(registration).has_app and phone_check_required(registration, number=phone_number):
        # On record already, so the next step texts or calls it: refused now, in words, rather than a step
        # the person could never finish.
        try:
            check_reachable(phone_number)
        except ValidationError as refused:
            raise ValidationError(errors.PHONE_ON_RECORD_UNREACHABLE, code=refused.code) from None
    with transaction.atomic():
        registration = lock_registration(registration)
        require_pending(registration)
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


def _require_number_proven(registration: Registration) -> None:
    """The wizard's ownership check (when it applies) comes before any later step, whoever calls."""
    if not registration.phone_verified_at and phone_check_required(registration):
        raise ValidationError(errors.STEP_OUT_OF_ORDER, code="order")


def set_platform(registration: Registration, *, platform: str, actor: User) -> Registration:
    """Record which platform the phone or tablet runs; it decides the install instructions and the default name.

    The name becomes the platform's ("Android tablet"), numbered if the person has one so named already.
    """
    device_kind = kind_of(registration)
    if not device_kind.has_app:
        raise ValidationError(errors.NO_APP_FOR_KIND, code="kind")
    if device_kind.platform(platform) is None:
        raise ValidationError(errors.platform_choice(device_kind), code="platform")
    with transaction.atomic():
        registration = lock_registration(registration)
        require_pending(registration)
        _require_number_proven(registration)
        registration.platform = platform
        registration.label = selectors.distinct_default_name(
            registration.user, registration.kind, platform, exclude=registration.pk
        )
        registration.save(update_fields=["platform", "label", "updated_at"])
    return registration


def issue_app_secret(
    registration: Registration, *, actor: User, verified_at: datetime | None, ip: str | None = None
) -> Registration:
    """Mark the app as installed and give the registration its pending authenticator secret.

    A pending secret is shown only to a session with a recent second factor (BND-01): whoever sees it holds a
    copy of the factor once it is bound.

    The secret is 160 random bits (OTP-07), encrypted at rest (OTP-08), and the
    device stays unconfirmed, so it is never offered at sign-in (ACT-04) until
    :func:`confirm_activation`. Calling it again keeps the same pending secret.
    """
    require_recent_verification(registration.user, verified_at)
    require_setup_open(registration.user, registration=registration)
    if not kind_of(registration).has_app:
        raise ValidationError(errors.NO_APP_FOR_KIND, code="kind")
    with transaction.atomic():
        registration = lock_registration(registration)
        require_pending(registration)
        if not registration.platform:
            raise ValidationError(errors.STEP_OUT_OF_ORDER, code="order")
        _require_number_proven(registration)
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


def confirm_activation(
    registration: Registration, *, code: str, actor: User, verified_at: datetime | None, ip: str | None = None
) -> Registration:
    """Bind the pending app device once the person enters a code it made.

    Binding needs a recent second factor (BND-01), checked here and not only when the setup started: a setup
    stays open for a day, and a session verified hours ago must not finish it.

    Verification consumes the code (OTP-04) and is throttled by django-otp; a
    wrong code is audited and raises ``ValidationError`` with the failure kept.
    A double submit of the same code returns the registration the other request
    bound; a confirm of a finished setup without that is refused, and so is one whose number, on record here, was
    never proven (:func:`_require_number_proven`), whichever way the number changed after the earlier steps. Audits ``device.bound``, once more for texts and calls when the wizard proved the number.
    """
    require_recent_verification(registration.user, verified_at)
    require_setup_open(registration.user, registration=registration)
    registration = Registration.objects.select_related("app_device").get(pk=registration.pk)
    require_pending(registration)
    device = registration.app_device
    if device is None:
        raise ValidationError(errors.STEP_OUT_OF_ORDER, code="order")
    verify_awaiting_code(
        registration, device, code, actor=actor, ip=ip, rejected="enrollment.code_rejected", wrong=errors.WRONG_CODE
    )
    with transaction.atomic():
        registration = lock_registration(registration)
        if registration.status == Registration.Status.ACTIVE:
            return registration
        require_pending(registration)
        _require_number_proven(registration)
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
        revoke_open_links(registration)
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
        notify_person(registration.user, event="device.bound", device_name=registration.display_name)
    return registration
