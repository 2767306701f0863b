"""Send limits for codes by text or call (SMS-06).

Every piece of state lives in PostgreSQL (REL-07): the limits count ``PhoneVerification`` rows, so a Redis outage
never lifts a limit.
"""

import hashlib
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from phonenumber_field.phonenumber import PhoneNumber

from identity.models import User

from .. import errors
from ..models import PhoneDevice, PhoneVerification


def check_send_allowed(*, user: User, number: PhoneNumber | str, own_factor: bool = False) -> None:
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


def _lock_number(number: PhoneNumber | str) -> None:
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
