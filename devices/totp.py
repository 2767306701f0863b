"""TOTP per RFC 6238 with replay protection (OTP-04, OTP-06, OTP-10).

Codes come from django-otp's HOTP implementation; what we add is the
verify-and-consume step under a row lock, so a code is accepted once even when
two requests race.
"""

import hmac
import time

from django.conf import settings
from django.db import transaction
from django_otp.oath import hotp


def current_step(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // settings.TOTP_STEP_SECONDS)


def code_at(key: bytes, step: int) -> str:
    digits = settings.TOTP_DIGITS
    return str(hotp(key, step, digits)).zfill(digits)


def normalize(code: str) -> str | None:
    code = "".join((code or "").split())
    if len(code) != settings.TOTP_DIGITS or not (code.isascii() and code.isdigit()):
        return None
    return code


def matching_step(key: bytes, code: str, *, after_step: int, now: float | None = None) -> int | None:
    """The time step within tolerance whose code equals ``code`` and is later than ``after_step``."""
    now_step = current_step(now)
    tolerance = settings.TOTP_TOLERANCE_STEPS
    found = None
    for step in range(now_step - tolerance, now_step + tolerance + 1):
        # Compare every candidate, not stopping at the first match, so timing says nothing.
        if hmac.compare_digest(code_at(key, step), code) and step > after_step and found is None:
            found = step
    return found


def verify_and_consume(device_model, device_pk: int, raw_code: str) -> bool:
    """Verify ``raw_code`` against the device and consume its time step, atomically.

    Locks the device row, honours django-otp's throttling, refuses any code at or
    before the last accepted step, and commits the new step or the failure count.
    """
    code = normalize(raw_code)
    with transaction.atomic():
        device = device_model.objects.select_for_update().get(pk=device_pk)
        allowed, _ = device.verify_is_allowed()
        if not allowed:
            return False
        step = matching_step(device.secret_bytes(), code, after_step=device.last_t) if code else None
        if step is None:
            device.throttle_increment(commit=False)
            device.save(update_fields=["throttling_failure_timestamp", "throttling_failure_count"])
            return False
        device.last_t = step
        device.throttle_reset(commit=False)
        device.set_last_used_timestamp(commit=False)
        device.save(
            update_fields=["last_t", "throttling_failure_timestamp", "throttling_failure_count", "last_used_at"]
        )
        return True
