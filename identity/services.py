"""State changes of people: lockout, unlock, sign-in outcomes. Each writes its audit event."""

import hashlib
import hmac
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from . import audit, errors, metrics, sql
from .models import AuditEvent, User
from .selectors import same_person, vpn_access_from_directory


def _notify(user: User, event: str) -> None:
    """Tell the person on another channel (BND-03). The notifier is a setting so this app imports no other."""
    if settings.SECURITY_NOTIFIER:
        import_string(settings.SECURITY_NOTIFIER)(user, event=event)


def _locked_row(user: User) -> User:
    return User.objects.select_for_update().get(pk=user.pk)


def _attempt_tag(username: str) -> str:
    """A keyed hash of the typed ID: counts failures per ID, known or not, without storing what was typed."""
    key = hashlib.sha256(b"signin-attempt:" + settings.SECRET_KEY.encode()).digest()
    return hmac.new(key, username.strip().casefold().encode(), hashlib.sha256).hexdigest()[:32]


def record_password_failure(
    username: str, *, username_known_user: User | None, ip: str | None, entry_point: str = "web"
) -> None:
    """Audit a wrong ID/password. The typed ID is kept only as a keyed hash (people type passwords into it)."""
    details = {"attempt": _attempt_tag(username)}
    if entry_point != "web":
        details["entry_point"] = entry_point
    audit.record("signin.password_failed", subject=username_known_user, ip=ip, details=details)
    if entry_point == "web":
        metrics.count(metrics.SIGNINS, "password", "wrong")


# The sign-in attempts the password throttle counts.
THROTTLED_ATTEMPTS = ("signin.password_failed", "signin.refused_inactive")


def password_sign_in_throttled(username: str, *, ip: str | None, by_address: bool) -> bool:
    """Too many wrong passwords lately for this ID (known or not, so it tells nothing) or, ``by_address``, from
    this address.

    Counts ``signin.password_failed`` and ``signin.refused_inactive`` events in the database (REL-07): a
    deactivated account's attempts are paused like wrong passwords, or they would write a row each without end. A
    refusal is audited, saying which limit it met (``limit``: ``id`` or ``address``). Failures at another door than the web (RADIUS) come from a VPN concentrator's address, which
    everyone behind it shares: they count toward their ID only, never toward an address (API-09). Such a door asks
    with ``by_address=False``, or the web's failures from that address (people behind the same NAT) would keep
    everyone out of it; ``by_address`` has no default, so every door says which it is.
    """
    since = timezone.now() - timedelta(minutes=settings.PASSWORD_THROTTLE_MINUTES)
    failures = AuditEvent.objects.filter(action__in=THROTTLED_ATTEMPTS, created_at__gte=since)
    limit = ""
    if failures.filter(details__attempt=_attempt_tag(username)).count() >= settings.PASSWORD_FAILURES_PER_ID:
        limit = "id"
    elif ip and by_address:
        from_here = failures.filter(ip=ip).exclude(details__has_key="entry_point")
        if from_here.count() >= settings.PASSWORD_FAILURES_PER_ADDRESS:
            limit = "address"
    if limit:
        audit.record("signin.password_throttled", ip=ip, details={"attempt": _attempt_tag(username), "limit": limit})
    return bool(limit)


def refuse_inactive_account(username: str, *, password: str, authenticated: User | None, ip: str | None) -> bool:
    """Whether sign-in must answer "your account is not active" (DIR-02), and then audit ``signin.refused_inactive``.

    ``authenticated`` is what the password backends returned (Django's refuse inactive people, so usually None).
    A deactivated local account must have been given its right password first, so a guess learns nothing; a
    directory person's password cannot be checked here, and their leaving is the directory's fact, not a secret.
    """
    person = authenticated or User.objects.filter(username=username).first()
    if person is None or person.is_active:
        return False
    # A directory person's local hash is never read (DIR-01).
    local = not person.from_directory and person.has_usable_password()
    if authenticated is None and local and not person.check_password(password):
        return False
    # With the typed ID's keyed hash, as a wrong password's: the throttle counts these attempts too.
    audit.record("signin.refused_inactive", subject=person, ip=ip, details={"attempt": _attempt_tag(username)})
    return True


def record_password_success(
    user: User, *, ip: str | None, entry_point: str = "web", code_follows: bool = False
) -> None:
    """Audit a right password (``signin.password_ok``).

    ``code_follows``: the caller checks a second factor in this same transaction (RADIUS's ``password,code``). The
    person's row is then locked before the audit append: every code check takes the row lock first and the audit
    chain's lock after it, and a transaction holding the chain's lock while it waits for the row would deadlock
    with a code check of the same person at another door (and hold every other append site-wide meanwhile).
    """
    if code_follows:
        _locked_row(user)
    audit.record("signin.password_ok", actor=user, subject=user, ip=ip)
    if entry_point == "web":
        metrics.count(metrics.SIGNINS, "password", "ok")


def expire_lock_if_due(user: User) -> User:
    """Clear a lock whose timed auto-unlock has passed (LOCKOUT_AUTO_UNLOCK_MINUTES), with an audit event."""
    if user.locked_at is None or user.is_locked:
        return user
    with transaction.atomic():
        user = _locked_row(user)
        if user.locked_at is not None and not user.is_locked:
            user.locked_at = user.locked_until = None
            user.second_factor_failures = 0
            user.save(update_fields=["locked_at", "locked_until", "second_factor_failures"])
            audit.record("account.auto_unlocked", subject=user)
    return user


def record_second_factor_failure(
    user: User,
    *,
    factor: str,
    ip: str | None,
    entry_point: str = "web",
    context: dict | None = None,
    row_locked: bool = False,
) -> User:
    """Count one failed second-factor attempt toward the lockout (OTP-01); lock at the threshold.

    Must run inside the caller's transaction so the failure and its audit commit together. ``context`` is added
    to the audit details (the VPN names its integration). ``row_locked``: the caller holds the person's row
    lock in this transaction and passes that row. Returns the refreshed user.
    """
    # No savepoint: inside the caller's transaction an error rolls back the whole attempt (fail closed).
    with transaction.atomic(savepoint=False):
        user = user if row_locked else _locked_row(user)
        user.second_factor_failures += 1
        fields: tuple[str, ...] = ("second_factor_failures",)
        locks = user.second_factor_failures >= settings.LOCKOUT_THRESHOLD and user.locked_at is None
        if locks:
            now = timezone.now()
            user.locked_at = now
            minutes = settings.LOCKOUT_AUTO_UNLOCK_MINUTES
            user.locked_until = now + timedelta(minutes=minutes) if minutes else None
            fields += ("locked_at", "locked_until")
        # Written before the audit events: every sign-in waits for the audit chain's lock, held from the first
        # append to the commit, so nothing else goes out while it is held.
        sql.save_fields(user, fields)
        audit.record(
            "signin.second_factor_failed",
            actor=user,
            subject=user,
            ip=ip,
            details={
                **(context or {}),
                "factor": factor,
                "entry_point": entry_point,
                "consecutive_failures": user.second_factor_failures,
            },
        )
        if locks:
            audit.record(
                "account.locked",
                subject=user,
                ip=ip,
                details={"consecutive_failures": user.second_factor_failures, "auto_unlock_minutes": minutes},
            )
            _notify(user, "account.locked")
            metrics.count_on_commit(metrics.LOCKOUTS, entry_point)
    return user


def record_second_factor_success(
    user: User,
    *,
    factor: str,
    ip: str | None,
    entry_point: str = "web",
    context: dict | None = None,
    row_locked: bool = False,
) -> User:
    """Reset the consecutive-failure count and audit the success (``context`` joins the audit details;
    ``row_locked`` as for :func:`record_second_factor_failure`)."""
    # No savepoint: inside the caller's transaction an error rolls back the whole attempt (fail closed).
    with transaction.atomic(savepoint=False):
        user = user if row_locked else _locked_row(user)
        if user.second_factor_failures:
            user.second_factor_failures = 0
            user.save(update_fields=["second_factor_failures"])
        audit.record(
            "signin.second_factor_ok",
            actor=user,
            subject=user,
            ip=ip,
            details={**(context or {}), "factor": factor, "entry_point": entry_point},
        )
    return user


def unlock_user(user: User, *, actor: User, reason: str, ip: str | None = None) -> User:
    """Clear a lockout and the failure count, and lift the hold after a lost last factor (BND-02). Audits
    ``account.unlocked`` with ``reason`` and tells the person when something was lifted.

    Raises ``ValidationError`` for an empty reason and for ``actor`` unlocking themselves under any account
    (BND-07, BND-08). The caller must have checked ``actor``'s permission and recorded who is asking (an identity
    check).
    """
    reason = reason.strip()
    if not reason:
        raise ValidationError(errors.UNLOCK_REASON_REQUIRED, code="reason")
    if same_person(actor, user):
        raise ValidationError(errors.UNLOCK_OWN_ACCOUNT, code="own_account")
    with transaction.atomic():
        user = _locked_row(user)
        was_locked = user.locked_at is not None
        was_held = user.lost_last_factor_at is not None
        user.locked_at = user.locked_until = user.lost_last_factor_at = None
        user.second_factor_failures = 0
        user.save(update_fields=["locked_at", "locked_until", "second_factor_failures", "lost_last_factor_at"])
        audit.record(
            "account.unlocked",
            actor=actor,
            subject=user,
            ip=ip,
            details={"reason": reason, "was_locked": was_locked, "released_setup_hold": was_held},
        )
        if was_locked or was_held:
            _notify(user, "account.unlocked")
    return user


def setup_held(user: User, *, ip: str | None) -> bool:
    """Whether a person with no working factor must be refused the first-device setup a password opens.

    True once their last factor was reported lost (BND-02), until the help desk's audited unlock; each refusal
    is audited (``signin.setup_held``).
    """
    if not user.setup_on_hold:
        return False
    audit.record("signin.setup_held", actor=user, subject=user, ip=ip)
    return True


def _vpn_refusal(user: User, *, status: str, actor: User | None) -> str:
    """Why ``actor`` may not move ``user``'s VPN access to ``status`` now, read on ``user``'s locked row; "" when
    they may. The directory (``actor`` None) is never refused: it decides what it manages."""
    if actor is None:
        return ""
    if status == User.VpnAccess.REQUESTED:
        if user.vpn_access in (User.VpnAccess.REQUESTED, User.VpnAccess.APPROVED):
            return errors.VPN_ALREADY_ASKED
        if vpn_access_from_directory(user):
            return errors.VPN_REQUEST_FROM_DIRECTORY.format(help_desk=settings.HELP_DESK_CONTACT)
        return ""
    if same_person(actor, user):
        return errors.VPN_OWN_ACCESS
    # The next sync or SCIM call would undo the change, and an agent's revocation would not hold.
    if vpn_access_from_directory(user):
        return errors.VPN_ACCESS_FROM_DIRECTORY
    if status == User.VpnAccess.APPROVED and not user.is_active:
        return errors.VPN_ACCOUNT_INACTIVE
    return ""


def _set_vpn_access(
    user: User, *, status: str, actor: User | None, reason: str, ip: str | None, details: dict | None = None
) -> User:
    """Move ``vpn_access`` to ``status`` with who and when; audits ``vpn_access.<status>`` (``details`` joining
    the event's) and notifies. Refuses (``ValidationError``, nothing changed) by :func:`_vpn_refusal`, decided on
    the locked row, so two requests at once cannot both pass."""
    reason = reason.strip()
    if not reason:
        raise ValidationError("Say why, in a few words.")
    with transaction.atomic():
        user = _locked_row(user)
        refusal = _vpn_refusal(user, status=status, actor=actor)
        if refusal:
            raise ValidationError(refusal, code="vpn_access")
        previous = user.vpn_access
        user.vpn_access = status
        user.vpn_access_changed_at = timezone.now()
        user.vpn_access_changed_by = actor
        user.save(update_fields=["vpn_access", "vpn_access_changed_at", "vpn_access_changed_by"])
        audit.record(
            f"vpn_access.{status}",
            actor=actor,
            subject=user,
            ip=ip,
            details={**(details or {}), "reason": reason, "previous": previous},
        )
        _notify(user, f"vpn_access.{status}")
    return user


def request_vpn_access(user: User, *, reason: str, ip: str | None = None) -> User:
    """The person asks for VPN access. Refused (``ValidationError``) while a request waits or access is approved,
    and when the directory decides their VPN access (:func:`identity.selectors.vpn_access_from_directory`)."""
    return _set_vpn_access(user, status=User.VpnAccess.REQUESTED, actor=user, reason=reason, ip=ip)


def approve_vpn_access(
    user: User, *, actor: User | None, reason: str, ip: str | None = None, details: dict | None = None
) -> User:
    """Give the person VPN access. The caller must have checked the actor may (help desk) and who is asking.

    ``actor`` None: the directory decided it (``details`` names the sync run or SCIM client). Anyone else is
    refused (``ValidationError``) for their own access, an inactive account, and a person whose VPN access the
    directory decides (:func:`identity.selectors.vpn_access_from_directory`)."""
    return _set_vpn_access(user, status=User.VpnAccess.APPROVED, actor=actor, reason=reason, ip=ip, details=details)


def revoke_vpn_access(
    user: User, *, actor: User | None, reason: str, ip: str | None = None, details: dict | None = None
) -> User:
    """End the person's VPN access (or refuse a request). The caller must have checked the actor may.

    ``actor`` None: the directory decided it (``details`` names the sync run or SCIM client). Anyone else is
    refused (``ValidationError``) for their own access and a person whose VPN access the directory decides."""
    return _set_vpn_access(user, status=User.VpnAccess.REVOKED, actor=actor, reason=reason, ip=ip, details=details)


def record_sign_out(user: User, *, ip: str | None) -> None:
    audit.record("signin.signed_out", actor=user, subject=user, ip=ip)


class SecondFactorOutcome:
    OK = "ok"
    WRONG = "wrong"
    THROTTLED = "throttled"
    LOCKED = "locked"


def factor_name(device: Any) -> str:
    name: str = getattr(device, "factor_name", type(device)._meta.label_lower)
    return name


def verify_second_factor(
    user: User, *, device: Any, code: object, ip: str | None, entry_point: str = "web", context: dict | None = None
) -> str:
    """Check ``code`` against ``device`` only (OTP-03) and keep the lockout count (OTP-01).

    The caller must have checked that ``device`` is a confirmed device of ``user``.
    The person's row is locked first, so concurrent attempts are counted one by
    one; the device consumes the code under its own lock (OTP-04). Returns a
    :class:`SecondFactorOutcome` value; every outcome is audited (``context`` joins the details).
    """
    if device.user_id != user.pk or not device.confirmed:
        raise ValueError("device does not belong to this person")
    return verify_typed_code(user, devices=[device], code=code, ip=ip, entry_point=entry_point, context=context)


def _throttle_state(device: Any) -> tuple[int, datetime | None]:
    return device.throttling_failure_count, device.throttling_failure_timestamp


def verify_typed_code(
    user: User, *, devices: list, code: object, ip: str | None, entry_point: str = "web", context: dict | None = None
) -> str:
    """:func:`_verify_typed_code`, and a web sign-in's outcome counted by factor (the VPN's doors count their own)."""
    outcome = _verify_typed_code(user, devices=devices, code=code, ip=ip, entry_point=entry_point, context=context)
    if entry_point == "web":
        factor = factor_name(devices[0]) if len(devices) == 1 else "passcode"
        metrics.count_on_commit(metrics.SIGNINS, factor, outcome)
    return outcome


def _verify_typed_code(
    user: User, *, devices: list, code: object, ip: str | None, entry_point: str = "web", context: dict | None = None
) -> str:
    """Lift a lock whose time is up, lock the person's row, and apply :func:`verify_typed_code_on_locked_row`."""
    user = expire_lock_if_due(user)
    with transaction.atomic(savepoint=False):
        return verify_typed_code_on_locked_row(
            _locked_row(user), devices=devices, code=code, ip=ip, entry_point=entry_point, context=context
        )


def _verify_token(device: Any, code: object) -> bool:
    return bool(device.verify_token(code))


def verify_typed_code_on_locked_row(
    user: User,
    *,
    devices: list,
    code: object,
    ip: str | None,
    entry_point: str = "web",
    context: dict | None = None,
    verify: Callable[[Any, object], bool] = _verify_token,
) -> str:
    """The sign-in rule for a typed code: check it against each of ``devices`` in turn, for entry points where
    nobody chose a device. Every door (the web, the Auth API, RADIUS) comes here, so the rule lives once.

    A locked person is refused unchecked (``signin.refused_locked``). A good code for one device never throttles
    the others (OTP-03): the devices tried before it get back their throttle state. The attempt counts once toward
    the lockout (OTP-01), which locks the account at the threshold; each device consumes a code under its own lock
    (OTP-04). Returns a :class:`SecondFactorOutcome` value; every outcome is audited once, ``context`` joining the
    details.

    The caller must hold ``user``'s row lock in its transaction and pass that row (any lock due to expire already
    lifted), and must have checked that the devices are the person's confirmed ones, freshly read. ``verify(device,
    code)`` checks and consumes one device's code; by default ``device.verify_token``, which locks the device's row
    itself. A caller that already holds the device rows' locks passes a check that works on them as they are.
    """
    factor = factor_name(devices[0]) if len(devices) == 1 else "passcode"
    with transaction.atomic(savepoint=False):
        if user.is_locked:
            audit.record(
                "signin.refused_locked",
                subject=user,
                ip=ip,
                details={**(context or {}), "factor": factor, "entry_point": entry_point},
            )
            return SecondFactorOutcome.LOCKED
        tried: list[tuple[Any, tuple[int, datetime | None]]] = []
        any_allowed = False
        for device in devices:
            # A first look at django-otp's back-off; the device checks it again under its own row lock.
            allowed, _ = device.verify_is_allowed()
            if not allowed:
                continue
            any_allowed = True
            before = _throttle_state(device)
            if verify(device, code):
                for other, (count, stamp) in tried:
                    type(other).objects.filter(pk=other.pk).update(
                        throttling_failure_count=count, throttling_failure_timestamp=stamp
                    )
                record_second_factor_success(
                    user, factor=factor_name(device), ip=ip, entry_point=entry_point, context=context, row_locked=True
                )
                return SecondFactorOutcome.OK
            tried.append((device, before))
        # django-otp's back-off refuses an attempt unseen; it still counts toward the lockout.
        user = record_second_factor_failure(
            user, factor=factor, ip=ip, entry_point=entry_point, context=context, row_locked=True
        )
        if user.is_locked:
            return SecondFactorOutcome.LOCKED
        return SecondFactorOutcome.WRONG if any_allowed else SecondFactorOutcome.THROTTLED
