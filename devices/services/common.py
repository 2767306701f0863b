"""Helpers every device service shares: row locks, the pending and re-authentication checks, device names,
taking a registration's factors out of use, and revoking its open links.
"""

import hashlib
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_otp import user_has_device

from identity import audit
from identity import errors as identity_errors
from identity.models import User

from .. import errors
from ..models import (
    ActivationLink,
    AuthenticatorAppDevice,
    PhoneDevice,
    Registration,
    SecurityKeyDevice,
)

SECRET_BYTES = 20  # 160 bits (OTP-07)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def lock_registration(registration: Registration) -> Registration:
    return Registration.objects.select_for_update().get(pk=registration.pk)


def app_device_name(label: str) -> str:
    return f"{label}: app"[:64]


def security_key_device_name(label: str) -> str:
    return f"{label}: security key"[:64]


def phone_device_name(label: str, *, can_text: bool) -> str:
    return f"{label}: {'text or call' if can_text else 'call'}"[:64]


def has_active_devices(user: User) -> bool:
    return Registration.objects.filter(user=user, status__in=Registration.IN_USE).exists()


class ReauthRequired(Exception):
    """A second factor within the last few minutes is needed first (BND-01).

    Not a ``ValidationError``: it is no form error for a view to show. The shared view decorators turn it into
    the confirm-identity step, whichever service raised it.
    """

    def __init__(self) -> None:
        super().__init__(errors.REAUTH_REQUIRED)
        self.messages = [errors.REAUTH_REQUIRED]


def require_recent_verification(user: User, verified_at: datetime | None) -> None:
    """Binding or removing a factor needs a second factor within REAUTH_MAX_AGE_SECONDS (BND-01).

    A person with no active device yet (first enrollment) is exempt.
    """
    if not has_active_devices(user):
        return
    max_age = timedelta(seconds=settings.REAUTH_MAX_AGE_SECONDS)
    if verified_at is None or timezone.now() - verified_at > max_age:
        raise ReauthRequired


def require_setup_open(
    user: User, *, reported_here_at: datetime | None = None, registration: Registration | None = None
) -> None:
    """Refuse to start a setup or bind a factor while the person's setup is held (BND-02, BND-05).

    The hold (``User.lost_last_factor_at``) is set when the last working factor is reported lost, and lasts while
    nothing else can sign in. Under it only the session that reported the loss may set up a device: the caller
    passes ``reported_here_at``, the hold's time that this session recorded when it reported the loss. A
    registration started after the hold came from that session (starting one is refused to any other), so binding
    it is allowed too. Raises ``ValidationError`` (code ``setup_held``).
    """
    held_since = User.objects.values_list("lost_last_factor_at", flat=True).get(pk=user.pk)
    if held_since is None or user_has_device(user, confirmed=True):
        return
    if reported_here_at == held_since or (registration is not None and registration.created_at > held_since):
        return
    raise ValidationError(errors.SETUP_HELD, code="setup_held")


def require_pending(registration: Registration) -> None:
    if registration.status != Registration.Status.PENDING:
        raise ValidationError(errors.NOT_PENDING, code="not_pending")
    if registration.is_pending_expired:
        raise ValidationError(errors.PENDING_EXPIRED, code=errors.CODE_EXPIRED)


def verify_awaiting_code(
    registration: Registration,
    device: AuthenticatorAppDevice,
    code: str,
    *,
    actor: User,
    ip: str | None,
    rejected: str,
    wrong: str,
) -> None:
    """Check a code from an app device waiting for its first one (a setup's or a reactivation's).

    Returns when the code is good and the caller should bind the device. A code refused because a concurrent
    request already bound this very device raises ``already_bound``: never success, since a refused code proves
    nothing about who sent it (it may be a guess racing the owner's double click). Otherwise audits ``rejected``
    and raises ``ValidationError`` (the throttle's failure is kept).
    """
    allowed, _ = device.verify_is_allowed()
    if not allowed:
        raise ValidationError(identity_errors.code_throttled(device), code="throttled")
    if device.verify_token(code):
        return
    registration.refresh_from_db(fields=["status", "app_device", "pending_app_device"])
    if registration.status == Registration.Status.ACTIVE and registration.app_device_id == device.pk:
        raise ValidationError(errors.ALREADY_BOUND, code=errors.CODE_ALREADY_BOUND)
    audit.record(rejected, actor=actor, subject=registration.user, ip=ip, details={"registration": registration.pk})
    raise ValidationError(wrong, code="wrong_code")


def retire_app_secret(device_id: int) -> None:
    AuthenticatorAppDevice.objects.filter(pk=device_id).update(confirmed=False, encrypted_secret="")


def hold_setup_if_no_factor_left(user: User) -> bool:
    """After a factor was lost: with nothing left to sign in with, a password alone must not open a new setup
    (BND-02, ``User.lost_last_factor_at``). Returns whether that was the last one."""
    if user_has_device(user, confirmed=True):
        return False
    User.objects.filter(pk=user.pk).update(lost_last_factor_at=timezone.now())
    return True


def device_ids(registration: Registration) -> set[str]:
    """The persistent ids (django-otp) of every factor the registration holds, as sessions record them."""
    ids: set[tuple[type[AuthenticatorAppDevice | PhoneDevice | SecurityKeyDevice], int | None]] = {
        (AuthenticatorAppDevice, registration.app_device_id),
        (AuthenticatorAppDevice, registration.pending_app_device_id),
        (PhoneDevice, registration.phone_device_id),
        (SecurityKeyDevice, registration.security_key_device_id),
    }
    return {f"{model.model_label()}/{pk}" for model, pk in ids if pk}


def retire_devices(registration: Registration) -> None:
    for device_id in (registration.app_device_id, registration.pending_app_device_id):
        if device_id:
            retire_app_secret(device_id)
    if registration.phone_device_id:
        PhoneDevice.objects.filter(pk=registration.phone_device_id).update(confirmed=False)
    if registration.security_key_device_id:
        # The credential id stays, so the same credential can never be bound again (to anyone).
        SecurityKeyDevice.objects.filter(pk=registration.security_key_device_id).update(confirmed=False)
    revoke_open_links(registration)


def revoke_open_links(registration: Registration) -> int:
    """Revoke every open (unused, unrevoked) activation or recovery link of the registration; return how many.

    The one place a registration's links are revoked: when a new link replaces them, when the setup or the
    reactivation they were for finishes or ends, and when the device is taken out of use.
    """
    return ActivationLink.objects.filter(registration=registration, consumed_at=None, revoked_at=None).update(
        revoked_at=timezone.now()
    )
