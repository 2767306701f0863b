"""State changes of devices: enrollment, activation, activation links, rename, retire.

Every function here is one whole state change: its rows, its audit event and
any outbound message are written in one transaction. Callers pass plain
values (``actor``, ``ip``), never a request. Refusals raise
``django.core.exceptions.ValidationError`` with a text from
:mod:`devices.errors`.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django_otp import user_has_device

from identity import audit
from identity import errors as identity_errors
from identity.models import User
from identity.open_sessions import end_sessions
from identity.selectors import email_changed_recently, is_staff_account

from . import crypto, errors, outbox, phone_codes, selectors
from .kinds import KINDS, kind_of
from .models import (
    ActivationLink,
    AuthenticatorAppDevice,
    BackupCodeDevice,
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
    return Registration.objects.filter(user=user, status__in=Registration.IN_USE).exists()


class ReauthRequired(Exception):
    """A second factor within the last few minutes is needed first (BND-01).

    Not a ``ValidationError``: it is no form error for a view to show. The shared view decorators turn it into
    the confirm-identity step, whichever service raised it.
    """

    def __init__(self):
        super().__init__(errors.REAUTH_REQUIRED)
        self.messages = [errors.REAUTH_REQUIRED]


def require_recent_verification(user, verified_at: datetime | None) -> None:
    """Binding or removing a factor needs a second factor within REAUTH_MAX_AGE_SECONDS (BND-01).

    A person with no active device yet (first enrollment) is exempt.
    """
    if not _has_active_devices(user):
        return
    max_age = timedelta(seconds=settings.REAUTH_MAX_AGE_SECONDS)
    if verified_at is None or timezone.now() - verified_at > max_age:
        raise ReauthRequired


def require_setup_open(
    user, *, reported_here_at: datetime | None = None, registration: Registration | None = None
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


def _require_pending(registration: Registration) -> None:
    if registration.status != Registration.Status.PENDING:
        raise ValidationError(errors.NOT_PENDING, code="not_pending")
    if registration.is_pending_expired:
        raise ValidationError(errors.PENDING_EXPIRED, code="expired")


def start_enrollment(
    user,
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
    registration: Registration, *, phone_number, actor, verified_at: datetime | None, ip: str | None = None
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


def _require_number_proven(registration: Registration) -> None:
    """The wizard's ownership check (when it applies) comes before any later step, whoever calls."""
    if not registration.phone_verified_at and phone_check_required(registration):
        raise ValidationError(errors.STEP_OUT_OF_ORDER, code="order")


def set_platform(registration: Registration, *, platform: str, actor) -> Registration:
    """Record which platform the phone or tablet runs; it decides the install instructions and the default name.

    The name becomes the platform's ("Android tablet"), numbered if the person has one so named already.
    """
    device_kind = kind_of(registration)
    if not device_kind.has_app:
        raise ValidationError(errors.NO_APP_FOR_KIND, code="kind")
    if device_kind.platform(platform) is None:
        raise ValidationError(errors.platform_choice(device_kind), code="platform")
    with transaction.atomic():
        registration = _lock(registration)
        _require_pending(registration)
        _require_number_proven(registration)
        registration.platform = platform
        registration.label = selectors.distinct_default_name(
            registration.user, registration.kind, platform, exclude=registration.pk
        )
        registration.save(update_fields=["platform", "label", "updated_at"])
    return registration


def issue_app_secret(
    registration: Registration, *, actor, verified_at: datetime | None, ip: str | None = None
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
        registration = _lock(registration)
        _require_pending(registration)
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


def _verify_awaiting_code(
    registration: Registration, device, code: str, *, actor, ip, rejected: str, wrong: str
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
        raise ValidationError(errors.ALREADY_BOUND, code="already_bound")
    audit.record(rejected, actor=actor, subject=registration.user, ip=ip, details={"registration": registration.pk})
    raise ValidationError(wrong, code="wrong_code")


def confirm_activation(
    registration: Registration, *, code: str, actor, verified_at: datetime | None, ip: str | None = None
) -> Registration:
    """Bind the pending app device once the person enters a code it made.

    Binding needs a recent second factor (BND-01), checked here and not only when the setup started: a setup
    stays open for a day, and a session verified hours ago must not finish it.

    Verification consumes the code (OTP-04) and is throttled by django-otp; a
    wrong code is audited and raises ``ValidationError`` with the failure kept.
    A double submit of the same code returns the registration the other request
    bound; a confirm of a finished setup without that is refused. Audits ``device.bound``, once more for texts and calls when the wizard proved the number.
    """
    require_recent_verification(registration.user, verified_at)
    require_setup_open(registration.user, registration=registration)
    registration = Registration.objects.select_related("app_device").get(pk=registration.pk)
    _require_pending(registration)
    device = registration.app_device
    if device is None:
        raise ValidationError(errors.STEP_OUT_OF_ORDER, code="order")
    _verify_awaiting_code(
        registration, device, code, actor=actor, ip=ip, rejected="enrollment.code_rejected", wrong=errors.WRONG_CODE
    )
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
        notify_person(registration.user, event="device.bound", device_name=registration.display_name)
    return registration


def _awaiting_device(registration: Registration) -> AuthenticatorAppDevice:
    """The unconfirmed app device a link or QR code may show: the new one of a setup or a reactivation."""
    device = registration.awaiting_app_device
    if device is None:
        raise ValidationError(errors.STEP_OUT_OF_ORDER, code="order")
    return device


def _issue_link(registration: Registration, *, purpose: str, sent_by=None, expires_at) -> tuple[ActivationLink, str]:
    """Revoke the registration's open links and create a new one; return it with its URL (built from SITE_URL)."""
    ActivationLink.objects.filter(registration=registration, consumed_at=None, revoked_at=None).update(
        revoked_at=timezone.now()
    )
    token = secrets.token_urlsafe(32)
    link = ActivationLink.objects.create(
        token_hash=hash_token(token),
        user=registration.user,
        registration=registration,
        purpose=purpose,
        expires_at=expires_at,
        sent_by=sent_by,
    )
    # The token goes after "#": browsers never send that part, so no access log or proxy ever sees it (OTP-09).
    return link, f"{settings.SITE_URL}{reverse('devices:activation_landing')}#{token}"


def send_activation_link(registration: Registration, *, actor, ip: str | None = None) -> ActivationLink:
    """Email the person a single-use link to open on the phone (ACT-01..03), for a setup or a reactivation.

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
        if registration.status == Registration.Status.REACTIVATING:
            purpose, deadline = ActivationLink.Purpose.REACTIVATION, registration.reactivation_expires_at
        else:
            _require_pending(registration)
            require_setup_open(user, registration=registration)
            purpose, deadline = ActivationLink.Purpose.ACTIVATION, registration.expires_at
        _awaiting_device(registration)
        now = timezone.now()
        recent = ActivationLink.objects.filter(
            registration=registration,
            created_at__gt=now - timedelta(seconds=settings.ACTIVATION_LINK_RESEND_SECONDS),
        )
        if recent.exists():
            raise ValidationError(errors.LINK_RESEND_TOO_SOON, code="too_soon")
        expires_at = min(now + settings.ACTIVATION_LINK_TTL, deadline or now + settings.ACTIVATION_LINK_TTL)
        link, url = _issue_link(registration, purpose=purpose, expires_at=expires_at)
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
            details={"registration": registration.pk, "link": link.pk, "purpose": purpose},
        )
    return link


def _link_still_valid(link: ActivationLink) -> bool:
    wanted = {
        ActivationLink.Purpose.ACTIVATION: (Registration.Status.PENDING,),
        ActivationLink.Purpose.REACTIVATION: (Registration.Status.REACTIVATING,),
        ActivationLink.Purpose.RECOVERY: (Registration.Status.ACTIVE, Registration.Status.REACTIVATING),
    }[link.purpose]
    return link.is_usable and link.registration.status in wanted


def find_activation_link(token_hash: str) -> ActivationLink:
    """The usable link whose token hashes to ``token_hash`` (see :func:`hash_token`), or ``ValidationError``.

    Used, revoked, expired and unknown links look alike.
    """
    link = ActivationLink.objects.select_related("user", "registration").filter(token_hash=token_hash or "-").first()
    if link is None or not _link_still_valid(link):
        raise ValidationError(errors.LINK_NOT_VALID, code="invalid")
    return link


def open_activation_link(link: ActivationLink, *, password: str, ip: str | None = None) -> ActivationLink:
    """Consume the link once the person gives their password; only then may the secret be shown.

    A wrong password is counted and audited; after ACTIVATION_LINK_MAX_PASSWORD_ATTEMPTS
    the link is revoked. A help-desk recovery link also starts the reactivation
    it was sent for, in the same transaction (the link and the password stand in
    for the missing second factor). Raises ``ValidationError`` on every refusal.
    """
    with transaction.atomic():
        link = ActivationLink.objects.select_for_update().select_related("user", "registration").get(pk=link.pk)
        if not _link_still_valid(link):
            raise ValidationError(errors.LINK_NOT_VALID, code="invalid")
        require_setup_open(link.user, registration=link.registration)
        if link.purpose == ActivationLink.Purpose.RECOVERY and link.user.is_locked:
            # Locked after the link was sent: a recovery would end in a verified session of a locked account.
            raise ValidationError(
                identity_errors.ACCOUNT_LOCKED.format(help_desk=settings.HELP_DESK_CONTACT), code="locked"
            )
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
                details={"link": link.pk, "registration": link.registration_id, "purpose": link.purpose},
            )
            if link.purpose == ActivationLink.Purpose.RECOVERY:
                registration = _lock(link.registration)
                if registration.status == Registration.Status.REACTIVATING and registration.pending_app_device_id:
                    # A change begun earlier may be stale or its secret seen elsewhere: recovery starts afresh.
                    _retire_app_secret(registration.pending_app_device_id)
                _begin_reactivation(registration, actor=link.user, old_phone_lost=False, ip=ip)
                audit.record(
                    "recovery.started",
                    actor=link.user,
                    subject=link.user,
                    ip=ip,
                    details={"registration": registration.pk, "sent_by": link.sent_by_id},
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
    registration: Registration,
    *,
    actor,
    verified_at: datetime | None,
    reason: str = "removed",
    ip: str | None = None,
    session_key: str | None = None,
) -> Registration:
    """Remove a device from use, keeping its history (BND-04).

    Needs a recent second factor (BND-01) and refuses the person's last active
    device (BND-02). The factor's seed is erased, so the row can never verify
    again. The person's other sessions verified with it end; the session
    ``session_key`` (the one removing it, which just passed the step-up) does
    not (BND-05): the caller keeps it verified. Audits ``device.retired``.
    """
    require_recent_verification(registration.user, verified_at)
    with transaction.atomic():
        registration = _lock(registration)
        if registration.status not in (Registration.Status.ACTIVE, Registration.Status.REACTIVATING):
            raise ValidationError(errors.NOT_ACTIVE, code="not_active")
        # Another device counts only if it can sign in now: one mid-change whose old phone was reported lost
        # has no confirmed factor until the new phone is confirmed. The rows are locked first, on their own
        # (PostgreSQL cannot lock through the outer joins to the devices).
        in_use = (
            Registration.objects.select_for_update()
            .filter(user_id=registration.user_id, status__in=Registration.IN_USE)
            .exclude(pk=registration.pk)
        )
        working = (
            Q(app_device__confirmed=True) | Q(phone_device__confirmed=True) | Q(security_key_device__confirmed=True)
        )
        others = Registration.objects.filter(working, pk__in=list(in_use.values_list("pk", flat=True)))
        if not others.exists():
            raise ValidationError(errors.LAST_DEVICE, code="last_device")
        registration.status = Registration.Status.RETIRED
        registration.retired_at = timezone.now()
        registration.retired_by = actor if getattr(actor, "pk", None) else None
        _retire_devices(registration)
        sessions_ended = end_sessions(registration.user, verified_with=device_ids(registration), keep=session_key)
        registration.pending_app_device = None
        registration.save(update_fields=["status", "retired_at", "retired_by", "pending_app_device", "updated_at"])
        audit.record(
            "device.retired",
            actor=actor,
            subject=registration.user,
            ip=ip,
            details={
                "registration": registration.pk,
                "kind": registration.kind,
                "reason": reason,
                "sessions_ended": sessions_ended,
            },
        )
        notify_person(registration.user, event="device.retired", device_name=registration.display_name)
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
    locked_user = User.objects.select_for_update().get(pk=user.pk)
    if purpose == PhoneVerification.Purpose.SIGNIN and locked_user.is_locked:
        # A locked account gets no codes: they could not be used, and each one costs money and annoys.
        raise ValidationError(
            identity_errors.ACCOUNT_LOCKED.format(help_desk=settings.HELP_DESK_CONTACT), code="locked"
        )
    phone_codes.check_send_allowed(user=user, number=number, own_factor=device is not None and device.confirmed)
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


def confirm_phone_code(
    registration: Registration, *, code: str, actor, verified_at: datetime | None, ip: str | None = None
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


# --- Notices (BND-03) ------------------------------------------------------------------------------

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
    "recovery.link_sent": "The help desk sent you a recovery link",
    "account.locked": "Your account was locked after too many wrong codes",
    "account.unlocked": "Your account was unlocked",
    "vpn_access.requested": "You asked for VPN access",
    "vpn_access.approved": "You now have VPN access",
    "vpn_access.revoked": "Your VPN access was ended",
    "security_key.counter_regressed": "A security key gave a sign-in answer that looks copied, and it was refused",
}


def notify_person(user, *, event: str, device_name: str = "", to: str = "") -> None:
    """Email the person about a change to their sign-in factors, through the outbox (BND-03, REL-10).

    Email is never a sign-in factor here, so it is always "another channel".
    Call inside the transaction of the change. ``to`` sends it to another of
    the person's addresses (the old one, after an email change). Nothing is
    queued for a person without an email address.
    """
    to = to or user.email
    if not to:
        return
    body = render_to_string(
        "emails/security_notice.txt",
        {
            "user": user,
            "what": NOTICES[event],
            "device_name": device_name,
            "when": timezone.now(),
            "institution": settings.INSTITUTION_NAME,
            "help_desk": settings.HELP_DESK_CONTACT,
            "site_url": settings.SITE_URL,
        },
    )
    outbox.queue_email(
        user=user,
        to=to,
        subject=f"{settings.INSTITUTION_NAME}: {NOTICES[event].lower()}",
        body=body,
        template=f"notice:{event}",
        holds_secret=False,
    )


# --- Reactivation after a phone upgrade, lost phones (ACT-06, BND-05) ------------------------------


def _begin_reactivation(registration: Registration, *, actor, old_phone_lost: bool, ip: str | None) -> Registration:
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
    if old_phone_lost and registration.app_device_id:
        _retire_app_secret(registration.app_device_id)
        _hold_setup_if_no_factor_left(registration.user)
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


def _hold_setup_if_no_factor_left(user) -> bool:
    """After a factor was lost: with nothing left to sign in with, a password alone must not open a new setup
    (BND-02, ``User.lost_last_factor_at``). Returns whether that was the last one."""
    if user_has_device(user, confirmed=True):
        return False
    User.objects.filter(pk=user.pk).update(lost_last_factor_at=timezone.now())
    return True


def _retire_app_secret(device_id: int) -> None:
    AuthenticatorAppDevice.objects.filter(pk=device_id).update(confirmed=False, encrypted_secret="")


def start_reactivation(
    registration: Registration,
    *,
    actor,
    verified_at: datetime | None,
    old_phone_lost: bool = False,
    ip: str | None = None,
) -> Registration:
    """ "I got a new phone": issue a new secret as pending, keeping the old one working until it is confirmed.

    Always a new secret (ACT-06); the old one is never shown again. With
    ``old_phone_lost`` the old secret stops working at once. Needs a recent
    second factor (BND-01). Audits ``device.reactivation_started``.
    """
    if not kind_of(registration).has_app:
        raise ValidationError(errors.NO_APP_FOR_KIND, code="kind")
    require_recent_verification(registration.user, verified_at)
    with transaction.atomic():
        registration = _lock(registration)
        if registration.is_reactivation_expired:
            registration = end_reactivation(registration, actor=None, reason="expired", ip=ip)
        if registration.status == Registration.Status.REACTIVATING:
            return registration
        if registration.status != Registration.Status.ACTIVE:
            raise ValidationError(errors.NOT_ACTIVE, code="not_active")
        return _begin_reactivation(registration, actor=actor, old_phone_lost=old_phone_lost, ip=ip)


def confirm_reactivation(
    registration: Registration,
    *,
    code: str,
    actor,
    verified_at: datetime | None,
    recovering: bool = False,
    ip: str | None = None,
) -> Registration:
    """Accept a code from the new phone: the new secret replaces the old one, which is retired (ACT-06).

    Needs a recent second factor (BND-01), except in a recovery session (``recovering``: opened by a help-desk
    link and the password, or kept open after the old phone was reported lost, for this change only).

    A code from the old phone does not match the new secret and is refused.
    So is any code once the change is over (confirmed, cancelled or expired):
    callers treat success as a proven factor, so it is never returned unearned.
    Audits ``device.reactivated`` and emails a notice (BND-03).
    """
    if not recovering:
        require_recent_verification(registration.user, verified_at)
    registration = Registration.objects.select_related("pending_app_device").get(pk=registration.pk)
    if registration.is_reactivation_expired:
        # Ended here, on a POST, not by whichever page first notices (GETs change nothing).
        end_reactivation(registration, actor=None, reason="expired", ip=ip)
        raise ValidationError(errors.REACTIVATION_EXPIRED, code="expired")
    _require_reactivating(registration)
    device = registration.pending_app_device
    _verify_awaiting_code(
        registration,
        device,
        code,
        actor=actor,
        ip=ip,
        rejected="device.reactivation_code_rejected",
        wrong=errors.REACTIVATION_WRONG_CODE,
    )
    with transaction.atomic():
        registration = _lock(registration)
        if registration.status == Registration.Status.ACTIVE:
            return registration
        _require_reactivating(registration)
        old_device_id = registration.app_device_id
        AuthenticatorAppDevice.objects.filter(pk=device.pk).update(confirmed=True)
        if old_device_id:
            _retire_app_secret(old_device_id)
        registration.app_device = device
        registration.pending_app_device = None
        registration.reactivation_expires_at = None
        registration.status = Registration.Status.ACTIVE
        registration.save(
            update_fields=["app_device", "pending_app_device", "reactivation_expires_at", "status", "updated_at"]
        )
        ActivationLink.objects.filter(registration=registration, consumed_at=None, revoked_at=None).update(
            revoked_at=timezone.now()
        )
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
        raise ValidationError(errors.NOT_REACTIVATING, code="not_reactivating")
    if registration.is_reactivation_expired:
        raise ValidationError(errors.REACTIVATION_EXPIRED, code="expired")


def end_reactivation(registration: Registration, *, actor, reason: str, ip: str | None = None) -> Registration:
    """Drop a pending reactivation (cancelled or expired): the new secret is erased, the old one stays."""
    with transaction.atomic():
        registration = _lock(registration)
        if registration.status != Registration.Status.REACTIVATING:
            return registration
        if registration.pending_app_device_id:
            _retire_app_secret(registration.pending_app_device_id)
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
        ActivationLink.objects.filter(registration=registration, consumed_at=None, revoked_at=None).update(
            revoked_at=timezone.now()
        )
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


def report_lost(
    registration: Registration,
    *,
    actor,
    verified_at: datetime | None,
    ip: str | None = None,
    session_key: str | None = None,
) -> Registration:
    """ "I lost my phone": the device stops working at once (BND-05); its history stays (BND-04).

    Every other session verified with the device ends, in the session store (BND-05); the caller ends its own
    session ``session_key`` when it was verified with the device. Allowed for the last device too: a lost
    device must never keep working. Then the setup is held (``User.lost_last_factor_at``, BND-02): every other
    session of the person ends as well, a password alone no longer opens a setup, and only the session that
    reported the loss may set up a new device (see :func:`require_setup_open`; the caller records the hold's
    time in it). Needs a recent second factor (BND-01). Audits
    ``device.reported_lost`` with the number of sessions ended, and emails a notice.
    """
    require_recent_verification(registration.user, verified_at)
    with transaction.atomic():
        registration = _lock(registration)
        if registration.status not in (Registration.Status.ACTIVE, Registration.Status.REACTIVATING):
            raise ValidationError(errors.NOT_ACTIVE, code="not_active")
        _retire_devices(registration)
        registration.status = Registration.Status.RETIRED
        registration.retired_at = timezone.now()
        registration.retired_by = actor if getattr(actor, "pk", None) else None
        lost = device_ids(registration)
        registration.pending_app_device = None
        registration.save(update_fields=["status", "retired_at", "retired_by", "pending_app_device", "updated_at"])
        last_factor = _hold_setup_if_no_factor_left(registration.user)
        sessions_ended = end_sessions(registration.user, verified_with=None if last_factor else lost, keep=session_key)
        audit.record(
            "device.reported_lost",
            actor=actor,
            subject=registration.user,
            ip=ip,
            details={
                "registration": registration.pk,
                "kind": registration.kind,
                "last_factor": last_factor,
                "sessions_ended": sessions_ended,
            },
        )
        notify_person(registration.user, event="device.reported_lost", device_name=registration.display_name)
    return registration


def device_ids(registration: Registration) -> set[str]:
    """The persistent ids (django-otp) of every factor the registration holds, as sessions record them."""
    ids = {
        (AuthenticatorAppDevice, registration.app_device_id),
        (AuthenticatorAppDevice, registration.pending_app_device_id),
        (PhoneDevice, registration.phone_device_id),
        (SecurityKeyDevice, registration.security_key_device_id),
    }
    return {f"{model.model_label()}/{pk}" for model, pk in ids if pk}


def _retire_devices(registration: Registration) -> None:
    for device_id in (registration.app_device_id, registration.pending_app_device_id):
        if device_id:
            _retire_app_secret(device_id)
    if registration.phone_device_id:
        PhoneDevice.objects.filter(pk=registration.phone_device_id).update(confirmed=False)
    if registration.security_key_device_id:
        # The credential id stays, so the same credential can never be bound again (to anyone).
        SecurityKeyDevice.objects.filter(pk=registration.security_key_device_id).update(confirmed=False)
    ActivationLink.objects.filter(registration=registration, consumed_at=None, revoked_at=None).update(
        revoked_at=timezone.now()
    )


# --- Help-desk recovery link (BND-07, BND-08) -------------------------------------------------------

IDENTITY_CHECK_METHODS = {
    "photo_id_in_person": "Photo ID checked in person",
    "video_call_with_photo_id": "Photo ID checked on a video call",
    "callback_to_number_on_file": "Called back on the number in the HR record",
    "manager_confirmation": "Confirmed by the person's manager, in writing",
}


@dataclass(frozen=True)
class IdentityCheck:
    """How the help desk made sure who it is talking to (BND-07): a method from a fixed list and a reference."""

    method: str
    reference: str

    def validate(self) -> None:
        if self.method not in IDENTITY_CHECK_METHODS:
            raise ValidationError(errors.IDENTITY_CHECK_METHOD, code="identity_check")
        if not self.reference.strip():
            raise ValidationError(errors.IDENTITY_CHECK_REFERENCE, code="identity_check")


def send_reactivation_link(
    user,
    *,
    sent_by,
    identity_check: IdentityCheck,
    registration: Registration | None = None,
    approved_by=None,
    ip: str | None = None,
) -> ActivationLink:
    """Email a person with no working factor a single-use link to put a new app in place of the old one.

    Requires a recorded identity check (BND-07); a staff member cannot send one
    to themselves (BND-08). A link to a staff account, or to an email changed in
    the last RECENT_EMAIL_CHANGE_HOURS, needs ``approved_by``: a second staff
    member, neither the sender nor the person (BND-08, AC-04). The link asks for
    the password, then starts a reactivation of ``registration`` (default: the
    person's newest active app device). Audits ``recovery.link_sent`` and emails
    it through the outbox.
    """
    identity_check.validate()
    if sent_by is None or not sent_by.is_staff:
        raise ValidationError(errors.DESK_STAFF_ONLY_LINK, code="staff_only")
    if sent_by.pk == user.pk:
        raise ValidationError(errors.NOT_ON_OWN_ACCOUNT, code="own_account")
    approver_ok = approved_by is not None and approved_by.is_staff and approved_by.pk not in (sent_by.pk, user.pk)
    if not approver_ok and (is_staff_account(user) or email_changed_recently(user)):
        raise ValidationError(errors.RECOVERY_NEEDS_APPROVER, code="needs_approver")
    if user.is_locked:
        # The link ends in a verified session: only the audited unlock (or its timer) reopens the account (OTP-01).
        raise ValidationError(errors.ACCOUNT_LOCKED_FOR_RECOVERY, code="locked")
    if not user.email:
        raise ValidationError(errors.NO_EMAIL_FOR_RECOVERY, code="no_email")
    if registration is None:
        registration = (
            Registration.objects.filter(
                user=user,
                status__in=[Registration.Status.ACTIVE, Registration.Status.REACTIVATING],
                kind__in=[kind.key for kind in KINDS.values() if kind.has_app],
            )
            .order_by("-activated_at")
            .first()
        )
    if registration is None or registration.user_id != user.pk or not kind_of(registration).has_app:
        raise ValidationError(errors.NO_APP_TO_RECOVER, code="no_registration")
    with transaction.atomic():
        registration = _lock(registration)
        if registration.status not in Registration.IN_USE:
            # A retired or unfinished device: the link could never be opened, so none is sent.
            raise ValidationError(errors.NO_APP_TO_RECOVER, code="no_registration")
        expires_at = timezone.now() + settings.ACTIVATION_LINK_TTL
        link, url = _issue_link(
            registration, purpose=ActivationLink.Purpose.RECOVERY, sent_by=sent_by, expires_at=expires_at
        )
        body = render_to_string(
            "emails/recovery_link.txt",
            {
                "user": user,
                "url": url,
                "expires_at": expires_at,
                "institution": settings.INSTITUTION_NAME,
                "help_desk": settings.HELP_DESK_CONTACT,
            },
        )
        outbox.queue_email(
            user=user,
            to=user.email,
            subject=f"{settings.INSTITUTION_NAME}: set up your authenticator app again",
            body=body,
            template="recovery_link",
            holds_secret=True,
            expires_at=expires_at,
        )
        audit.record(
            "recovery.link_sent",
            actor=sent_by,
            subject=user,
            ip=ip,
            details={
                "registration": registration.pk,
                "link": link.pk,
                "identity_check": identity_check.method,
                "reference": identity_check.reference,
            }
            | ({"approved_by": approved_by.pk} if approver_ok else {}),
        )
    return link


# --- Backup codes (BND-06) ---------------------------------------------------------------------------


def generate_backup_codes(user, *, actor, verified_at: datetime | None, ip: str | None = None) -> list[str]:
    """Make a new set of 10 backup codes and return them: the only time they exist in clear.

    The previous set stops working. Needs a recent second factor (BND-01).
    Audits ``backup_codes.generated`` and emails a notice (BND-03, BND-06).
    """
    from . import backup_codes

    require_recent_verification(user, verified_at)
    require_setup_open(user)
    with transaction.atomic():
        User.objects.select_for_update().get(pk=user.pk)
        retired = BackupCodeDevice.objects.filter(user=user, confirmed=True).update(confirmed=False)
        device = BackupCodeDevice.objects.create(user=user, name="Backup codes", confirmed=True)
        codes = backup_codes.store_new_codes(device)
        audit.record(
            "backup_codes.generated",
            actor=actor,
            subject=user,
            ip=ip,
            details={"device": device.persistent_id, "count": len(codes), "replaced_sets": retired},
        )
        notify_person(user, event="backup_codes.generated")
    return codes
