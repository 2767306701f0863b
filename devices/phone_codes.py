"""Codes sent by text or call: generation, keyed hashing, send throttles and single-use checks (SMS-02, SMS-06).

Every piece of state lives in PostgreSQL (REL-07): the throttles count
``PhoneVerification`` rows, so a Redis outage never lifts a limit.
"""

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from . import errors
from .models import PhoneDevice, PhoneVerification

CODE_DIGITS = 6


def new_code() -> str:
    return str(secrets.randbelow(10**CODE_DIGITS)).zfill(CODE_DIGITS)


def _hash_key() -> bytes:
    # A key from the environment: a database dump alone cannot brute-force 10^6 codes.
    keys = settings.FACTOR_ENCRYPTION_KEYS or [settings.SECRET_KEY]
    return hashlib.sha256(b"phone-code:" + keys[0].encode()).digest()


def hash_code(verification_salt: str, code: str) -> str:
    return hmac.new(_hash_key(), f"{verification_salt}:{code}".encode(), hashlib.sha256).hexdigest()


def code_matches(verification: PhoneVerification, code: str) -> bool:
    code = "".join((code or "").split())
    if len(code) != CODE_DIGITS or not (code.isascii() and code.isdigit()):
        return False
    return hmac.compare_digest(verification.code_hash, hash_code(_salt(verification), code))


def _salt(verification: PhoneVerification) -> str:
    return f"{verification.user_id}:{verification.number}:{verification.purpose}:{verification.expires_at.isoformat()}"


def seal(verification: PhoneVerification, code: str) -> None:
    """Set the verification's hash for ``code``; the salt binds it to this person, number, purpose and expiry."""
    verification.code_hash = hash_code(_salt(verification), code)


def check_send_allowed(*, user, number, own_factor: bool = False) -> None:
    """Raise ``ValidationError`` when another code to ``number`` (or for ``user``) would break a send limit (SMS-06).

    Call inside the transaction that writes the code: the number is locked until it commits, so two people
    asking for codes to one number at once are counted one after the other. Every send to a number counts
    toward its limits. Someone who has not proved a number that others have proved (``own_factor``: the person
    signs in with a phone they proved) may use only part of them, so typing a number into the wizard cannot
    use its limits up and keep the people who own it from signing in.
    """
    _lock_number(number)
    now = timezone.now()
    by_number = PhoneVerification.objects.filter(number=number)
    by_user = PhoneVerification.objects.filter(user=user)
    gap = timedelta(seconds=settings.PHONE_RESEND_SECONDS)
    if by_number.filter(created_at__gt=now - gap).exists() or by_user.filter(created_at__gt=now - gap).exists():
        raise ValidationError(
            errors.PHONE_RESEND_TOO_SOON.format(seconds=settings.PHONE_RESEND_SECONDS), code="too_soon"
        )
    per_ten_minutes, per_day = settings.PHONE_SENDS_PER_NUMBER_PER_10_MINUTES, settings.PHONE_DAILY_CAP_PER_NUMBER
    if not own_factor and PhoneDevice.objects.filter(number=number, confirmed=True).exclude(user=user).exists():
        # One send in every ten minutes and half the day are kept for the number's owners.
        per_ten_minutes, per_day = max(1, per_ten_minutes - 1), max(1, per_day // 2)
    if by_number.filter(created_at__gt=now - timedelta(minutes=10)).count() >= per_ten_minutes:
        raise ValidationError(errors.PHONE_TOO_MANY_SENDS, code="too_many")
    day = now - timedelta(days=1)
    if (
        by_number.filter(created_at__gt=day).count() >= per_day
        or by_user.filter(created_at__gt=day).count() >= settings.PHONE_DAILY_CAP_PER_PERSON
    ):
        raise ValidationError(errors.PHONE_DAILY_CAP, code="daily_cap")


def _lock_number(number) -> None:
    """Hold a lock on ``number`` until the current transaction ends (PostgreSQL only).

    SQLite, the development default, has no such lock: two requests there may both count before either
    writes, and the second write then waits for or fails on SQLite's database lock.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("check_send_allowed() must run inside the transaction that writes the code")
    if connection.vendor != "postgresql":
        return
    # A number has no row of its own to lock, so the lock is an advisory one on a 64-bit key derived from it.
    digest = hashlib.sha256(b"phone-send:" + str(number).encode()).digest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digest[:8], "big", signed=True)])


def open_verification(*, purpose: str, registration=None, device=None) -> PhoneVerification | None:
    """The newest verification still usable for this registration (or device) and purpose."""
    rows = PhoneVerification.objects.filter(purpose=purpose, consumed_at=None, superseded_at=None)
    rows = rows.filter(device=device) if device is not None else rows.filter(registration=registration)
    latest = rows.order_by("-created_at").first()
    return latest if latest is not None and latest.is_open else None


def verify_signin_code(device, raw_code: str) -> bool:
    """Check a sign-in code against the device's newest open challenge and consume it, atomically."""
    with transaction.atomic():
        device = type(device).objects.select_for_update().get(pk=device.pk)
        allowed, _ = device.verify_is_allowed()
        if not allowed:
            return False
        verification = (
            PhoneVerification.objects.select_for_update()
            .filter(device=device, purpose=PhoneVerification.Purpose.SIGNIN, consumed_at=None, superseded_at=None)
            .order_by("-created_at")
            .first()
        )
        if verification is not None and verification.is_open and code_matches(verification, raw_code):
            verification.consumed_at = timezone.now()
            verification.save(update_fields=["consumed_at"])
            device.throttle_reset(commit=False)
            device.set_last_used_timestamp(commit=False)
            device.save(update_fields=["throttling_failure_timestamp", "throttling_failure_count", "last_used_at"])
            return True
        if verification is not None and verification.is_open:
            verification.attempts += 1
            verification.save(update_fields=["attempts"])
        device.throttle_increment(commit=False)
        device.save(update_fields=["throttling_failure_timestamp", "throttling_failure_count"])
        return False
