"""Activation and recovery links: issuing, finding and opening them (ACT-01..03, BND-07).

Every function is one whole state change (rows, audit event, outbound message in one transaction); callers
pass plain values (``actor``, ``ip``), never a request; refusals raise ``ValidationError`` with a text from
:mod:`devices.errors`.
"""

import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from identity import audit
from identity import errors as identity_errors
from identity.directory.backends import Answer, check_person_password
from identity.models import User

from .. import errors, outbox, selectors
from ..kinds import kind_of
from ..models import (
    ActivationLink,
    AuthenticatorAppDevice,
    Registration,
)
from .common import (
    hash_token,
    lock_registration,
    require_pending,
    require_setup_open,
    retire_app_secret,
    revoke_open_links,
)
from .reactivation import begin_reactivation


def _awaiting_device(registration: Registration) -> AuthenticatorAppDevice:
    """The unconfirmed app device a link or QR code may show: the new one of a setup or a reactivation."""
    device: AuthenticatorAppDevice | None = registration.awaiting_app_device
    if device is None:
        raise ValidationError(errors.STEP_OUT_OF_ORDER, code="order")
    return device


def _issue_link(
    registration: Registration, *, purpose: str, actor: User | None = None, expires_at: datetime
) -> tuple[ActivationLink, str]:
    """Revoke the registration's open links and create a new one; return it with its URL (built from SITE_URL)."""
    revoke_open_links(registration)
    token = secrets.token_urlsafe(32)
    link = ActivationLink.objects.create(
        token_hash=hash_token(token),
        user=registration.user,
        registration=registration,
        purpose=purpose,
        expires_at=expires_at,
        sent_by=actor,
    )
    # The token goes after "#": browsers never send that part, so no access log or proxy ever sees it (OTP-09).
    return link, f"{settings.SITE_URL}{reverse('devices:activation_landing')}#{token}"


def send_activation_link(registration: Registration, *, actor: User, ip: str | None = None) -> ActivationLink:
    """Email the person a single-use link to open on the phone (ACT-01..03), for a setup or a reactivation.

    The token (256 bits) is only in the email; the database keeps its hash.
    A new link revokes the earlier ones of this registration. The URL is built
    from ``SITE_URL``, never from the request's Host. Audits ``activation_link.sent``.
    Raises when the person has no email address or asked less than a minute ago, and when the setup or the
    phone change has expired (code ``expired``).
    """
    user = registration.user
    if not user.email:
        raise ValidationError(errors.NO_EMAIL, code="no_email")
    with transaction.atomic():
        registration = lock_registration(registration)
        if registration.status == Registration.Status.REACTIVATING:
            if registration.is_reactivation_expired:
                # Not yet ended by the beat task: a link would be dead before it arrived.
                raise ValidationError(selectors.reactivation_expired_words(registration), code=errors.CODE_EXPIRED)
            purpose, deadline = ActivationLink.Purpose.REACTIVATION, registration.reactivation_expires_at
        else:
            require_pending(registration)
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
        body = outbox.render_text(
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
    wanted_by_purpose: dict[str, tuple[str, ...]] = {
        ActivationLink.Purpose.ACTIVATION: (Registration.Status.PENDING,),
        ActivationLink.Purpose.REACTIVATION: (Registration.Status.REACTIVATING,),
        ActivationLink.Purpose.RECOVERY: (Registration.Status.ACTIVE, Registration.Status.REACTIVATING),
    }
    wanted = wanted_by_purpose[link.purpose]
    return link.is_usable and link.registration.status in wanted


def find_activation_link(token_hash: str) -> ActivationLink:
    """The usable link whose token hashes to ``token_hash`` (see :func:`hash_token`), or ``ValidationError``.

    Used, revoked, expired and unknown links look alike.
    """
    link = ActivationLink.objects.select_related("user", "registration").filter(token_hash=token_hash or "-").first()
    if link is None or not _link_still_valid(link):
        raise ValidationError(errors.LINK_NOT_VALID, code=errors.CODE_LINK_INVALID)
    return link


def open_activation_link(link: ActivationLink, *, password: str, ip: str | None = None) -> ActivationLink:
    """Consume the link once the person gives their password; only then may the secret be shown.

    A wrong password is counted and audited; after ACTIVATION_LINK_MAX_PASSWORD_ATTEMPTS
    the link is revoked. A recovery link also starts the reactivation
    it was sent for, in the same transaction (the link and the password stand in
    for the missing second factor); the returned link's registration is then the
    one the change left, with its new app device. Raises ``ValidationError`` on every refusal.
    """
    with transaction.atomic():
        link = ActivationLink.objects.select_for_update().select_related("user", "registration").get(pk=link.pk)
        if not _link_still_valid(link):
            raise ValidationError(errors.LINK_NOT_VALID, code=errors.CODE_LINK_INVALID)
        require_setup_open(link.user, registration=link.registration)
        if link.purpose == ActivationLink.Purpose.RECOVERY and link.user.is_locked:
            # Locked after the link was sent: a recovery would end in a verified session of a locked account.
            raise ValidationError(
                identity_errors.ACCOUNT_LOCKED.format(help_desk=settings.HELP_DESK_CONTACT), code="locked"
            )
        # The one password check of the site: a directory person's only by the directory (DIR-01).
        checked = check_person_password(link.user, password or "", ip=ip, entry_point="link")
        if checked.user is None and not checked.counts_as_failure:
            # The directory is out of reach: nobody's wrong password, so nothing is counted or revoked.
            failure = ValidationError(checked.message, code="unreachable")
        elif checked.user is None:
            link.password_failures += 1
            revoke = link.password_failures >= settings.ACTIVATION_LINK_MAX_PASSWORD_ATTEMPTS
            if revoke:
                link.revoked_at = timezone.now()
            link.save(update_fields=["password_failures", "revoked_at"])
            audit.record(
                "activation_link.password_failed",
                subject=link.user,
                ip=ip,
                details={"link": link.pk, "failures": link.password_failures, "revoked": revoke}
                | ({} if checked.answer == Answer.WRONG_PASSWORD else {"answer": str(checked.answer)}),
            )
            # Committed on purpose: the failure must count even though we refuse.
            wrong = errors.LINK_WRONG_PASSWORD if checked.answer == Answer.WRONG_PASSWORD else checked.message
            failure = ValidationError(
                errors.LINK_TOO_MANY_PASSWORDS if revoke else wrong,
                code=errors.CODE_LINK_REVOKED if revoke else "password",
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
                registration = lock_registration(link.registration)
                if registration.status == Registration.Status.REACTIVATING and registration.pending_app_device_id:
                    # A change begun earlier may be stale or its secret seen elsewhere: recovery starts afresh.
                    retire_app_secret(registration.pending_app_device_id)
                link.registration = begin_reactivation(registration, actor=link.user, old_phone_lost=False, ip=ip)
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


def send_recovery_link(
    user: User,
    *,
    actor: User,
    registration: Registration | None = None,
    details: Mapping[str, object] | None = None,
    ip: str | None = None,
) -> ActivationLink:
    """Email a person with no working factor a single-use link to put a new app in place of the old one.

    The link stands in for the missing second factor: the caller must have made sure who asked for it and that
    ``actor`` may send it (the help desk's identity check and second approver, BND-07, BND-08); ``details`` says
    how, for the audit event (never a secret). The link asks for the password, then starts a reactivation of
    ``registration`` (default: the person's newest active app device). Audits ``recovery.link_sent`` and emails
    the link through the outbox. Raises ``ValidationError`` for an inactive or locked account, a person without an email
    address, and a registration that is not the person's phone or tablet with an app, in use.
    """
    if not user.is_active:
        raise ValidationError(errors.ACCOUNT_INACTIVE_FOR_RECOVERY, code="inactive")
    if user.is_locked:
        # The link ends in a verified session: only the audited unlock (or its timer) reopens the account (OTP-01).
        raise ValidationError(errors.ACCOUNT_LOCKED_FOR_RECOVERY, code="locked")
    if not user.email:
        raise ValidationError(errors.NO_EMAIL_FOR_RECOVERY, code="no_email")
    if registration is None:
        registration = selectors.app_to_recover(user)
    if registration is None or registration.user_id != user.pk or not kind_of(registration).has_app:
        raise ValidationError(errors.NO_APP_TO_RECOVER, code="no_registration")
    with transaction.atomic():
        registration = lock_registration(registration)
        if registration.status not in Registration.IN_USE:
            # A retired or unfinished device: the link could never be opened, so none is sent.
            raise ValidationError(errors.NO_APP_TO_RECOVER, code="no_registration")
        expires_at = timezone.now() + settings.ACTIVATION_LINK_TTL
        link, url = _issue_link(
            registration, purpose=ActivationLink.Purpose.RECOVERY, actor=actor, expires_at=expires_at
        )
        body = outbox.render_text(
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
            actor=actor,
            subject=user,
            ip=ip,
            details={"registration": registration.pk, "link": link.pk} | dict(details or {}),
        )
    return link
