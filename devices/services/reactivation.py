"""Reactivation after a phone upgrade or a lost phone (ACT-06, BND-05).

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

from identity import audit
from identity.models import User

from .. import crypto, errors, selectors
from ..kinds import kind_of
from ..models import (
    AuthenticatorAppDevice,
    Registration,
)
from .common import (
    SECRET_BYTES,
    app_device_name,
    hold_setup_if_no_factor_left,
    lock_registration,
    require_recent_verification,
    retire_app_secret,
    revoke_open_links,
    verify_awaiting_code,
)
from .notices import notify_person


def begin_reactivation(
    registration: Registration, *, actor: User, old_phone_lost: bool, ip: str | None
) -> Registration:
    """Give a locked, active registration a new pending secret; the caller holds the transaction."""
    now = timezone.now()
    device = AuthenticatorAppDevice.objects.create(
        user=registration.user,
        name=app_device_name(registration.display_name),
        confirmed=False,
        encrypted_secret=crypto.encrypt(secrets.token_bytes(SECRET_BYTES)),
    )
    registration.pending_app_device = device
    registration.status = Registration.Status.REACTIVATING
    registration.reactivation_expires_at = now + settings.ACTIVATION_LINK_TTL
    registration.save(update_fields=["pending_app_device", "status", "reactivation_expires_at", "updated_at"])
    if old_phone_lost:
        _stop_old_app(registration)
    audit.record(
        "device.reactivation_started",
        actor=actor,
        subject=registration.user,
        ip=ip,
        details={"registration": registration.pk, "old_phone_lost": old_phone_lost},
    )
    if old_phone_lost:
        # The old phone's codes stop now, before any new phone is confirmed: a removal the person must hear of.
        notify_person(registration.user, event="device.reported_lost", device_name=registration.display_name)
    return registration


def _stop_old_app(registration: Registration) -> bool:
    """Switch off the locked registration's old app secret; return whether it was still working."""
    if not registration.app_device_id:
        return False
    working = selectors.old_app_works(registration)
    retire_app_secret(registration.app_device_id)
    hold_setup_if_no_factor_left(registration.user)
    return working


def stop_old_phone_mid_change(registration: Registration, *, actor: User, ip: str | None) -> Registration:
    """The old phone is reported lost while its change is already under way: its app codes stop now.

    The caller holds the transaction and the lock on a reactivating registration. Audits
    ``device.old_phone_stopped`` and emails the notice of a lost device, once: an old app already off changes
    nothing.
    """
    if _stop_old_app(registration):
        audit.record(
            "device.old_phone_stopped",
            actor=actor,
            subject=registration.user,
            ip=ip,
            details={"registration": registration.pk},
        )
        notify_person(registration.user, event="device.reported_lost", device_name=registration.display_name)
    return registration


def start_reactivation(
    registration: Registration,
    *,
    actor: User,
    verified_at: datetime | None,
    old_phone_lost: bool = False,
    ip: str | None = None,
) -> Registration:
    """ "I got a new phone": issue a new secret as pending, keeping the old one working until it is confirmed.

    Always a new secret (ACT-06); the old one is never shown again. With
    ``old_phone_lost`` the old secret stops working at once. Needs a recent
    second factor (BND-01). Audits ``device.reactivation_started``.

    With a change already under way, that change is returned; ``old_phone_lost`` still stops the old secret then
    (:func:`stop_old_phone_mid_change`): the person may have ticked it on a second try, or in another tab.
    """
    if not kind_of(registration).has_app:
        raise ValidationError(errors.NO_APP_FOR_KIND, code="kind")
    require_recent_verification(registration.user, verified_at)
    with transaction.atomic():
        registration = lock_registration(registration)
        if registration.is_reactivation_expired:
            registration = end_reactivation(registration, actor=None, reason="expired", ip=ip)
        if registration.status == Registration.Status.REACTIVATING:
            if old_phone_lost:
                return stop_old_phone_mid_change(registration, actor=actor, ip=ip)
            return registration
        if registration.status != Registration.Status.ACTIVE:
            raise ValidationError(errors.NOT_ACTIVE, code="not_active")
        return begin_reactivation(registration, actor=actor, old_phone_lost=old_phone_lost, ip=ip)


def confirm_reactivation(
    registration: Registration,
    *,
    code: str,
    actor: User,
    verified_at: datetime | None,
    recovery_for: int | None = None,
    ip: str | None = None,
) -> Registration:
    """Accept a code from the new phone: the new secret replaces the old one, which is retired (ACT-06).

    Needs a recent second factor (BND-01), except in a recovery session (opened by a help-desk link and the
    password, or kept open after the old phone was reported lost) for this very change: ``recovery_for`` is the
    new app device the session was opened for, and a change begun again since (another new secret) needs the
    second factor like any other.

    A code from the old phone does not match the new secret and is refused.
    So is any code once the change is over (confirmed, cancelled or expired):
    callers treat success as a proven factor, so it is never returned unearned.
    Audits ``device.reactivated`` and emails a notice (BND-03).
    """
    registration = Registration.objects.select_related("pending_app_device").get(pk=registration.pk)
    if recovery_for is None or recovery_for != registration.pending_app_device_id:
        require_recent_verification(registration.user, verified_at)
    if registration.is_reactivation_expired:
        # Ended here, on a POST, not by whichever page first notices (GETs change nothing).
        ended = end_reactivation(registration, actor=None, reason="expired", ip=ip)
        raise ValidationError(selectors.reactivation_expired_words(ended), code=errors.CODE_EXPIRED)
    _require_reactivating(registration)
    device = registration.pending_app_device
    assert device is not None  # _require_reactivating saw its id
    verify_awaiting_code(
        registration,
        device,
        code,
        actor=actor,
        ip=ip,
        rejected="device.reactivation_code_rejected",
        wrong=errors.REACTIVATION_WRONG_CODE,
    )
    with transaction.atomic():
        registration = lock_registration(registration)
        if registration.status == Registration.Status.ACTIVE:
            return registration
        _require_reactivating(registration)
        if registration.pending_app_device_id != device.pk:
            # Begun again while the code was checked: the code was for a secret no longer waiting.
            raise ValidationError(errors.NOT_REACTIVATING, code=errors.CODE_NOT_REACTIVATING)
        old_device_id = registration.app_device_id
        AuthenticatorAppDevice.objects.filter(pk=device.pk).update(confirmed=True)
        if old_device_id:
            retire_app_secret(old_device_id)
        registration.app_device = device
        registration.pending_app_device = None
        registration.reactivation_expires_at = None
        registration.status = Registration.Status.ACTIVE
        registration.save(
            update_fields=["app_device", "pending_app_device", "reactivation_expires_at", "status", "updated_at"]
        )
        revoke_open_links(registration)
        audit.record(
            "device.reactivated",
            actor=actor,
            subject=registration.user,
            ip=ip,
            details={"registration": registration.pk, "retired_device": old_device_id},
        )
        notify_person(registration.user, event="device.reactivated", device_name=registration.display_name)
    return registration


def _require_reactivating(registration: Registration) -> None:
    if registration.status != Registration.Status.REACTIVATING or registration.pending_app_device_id is None:
        raise ValidationError(errors.NOT_REACTIVATING, code=errors.CODE_NOT_REACTIVATING)
    if registration.is_reactivation_expired:
        raise ValidationError(errors.REACTIVATION_EXPIRED, code=errors.CODE_EXPIRED)


def end_reactivation(
    registration: Registration, *, actor: User | None, reason: str, ip: str | None = None
) -> Registration:
    """Drop a pending reactivation (cancelled or expired): the new secret is erased, the old one stays."""
    with transaction.atomic():
        registration = lock_registration(registration)
        if registration.status != Registration.Status.REACTIVATING:
            return registration
        if registration.pending_app_device_id:
            retire_app_secret(registration.pending_app_device_id)
        registration.pending_app_device = None
        registration.reactivation_expires_at = None
        old_usable = (
            registration.app_device_id
            and AuthenticatorAppDevice.objects.filter(pk=registration.app_device_id, confirmed=True).exists()
        )
        registration.status = (
            Registration.Status.ACTIVE if old_usable or registration.phone_device_id else (Registration.Status.RETIRED)
        )
        if registration.status == Registration.Status.RETIRED:
            registration.retired_at = timezone.now()
        registration.save(
            update_fields=["pending_app_device", "reactivation_expires_at", "status", "retired_at", "updated_at"]
        )
        revoke_open_links(registration)
        audit.record(
            "device.reactivation_ended",
            actor=actor,
            subject=registration.user,
            ip=ip,
            details={
                "registration": registration.pk,
                "reason": reason,
                "retired": registration.status == Registration.Status.RETIRED,
            },
        )
    return registration


def expire_stale_reactivations() -> int:
    """End every reactivation past its deadline (a beat task calls this). Returns how many ended."""
    stale = Registration.objects.filter(
        status=Registration.Status.REACTIVATING, reactivation_expires_at__lte=timezone.now()
    )
    count = 0
    for registration in stale:
        end_reactivation(registration, actor=None, reason="expired")
        count += 1
    return count
