"""TOTP per RFC 6238 with replay protection (OTP-04, OTP-06, OTP-10).

Codes come from django-otp's HOTP implementation; what we add is the
consume step, run under the device's row lock by :mod:`devices.verification`, so a code is accepted once even when
two requests race.
"""

import hmac
import time

from django.conf import settings
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


def is_next_code(device, raw_code: str) -> bool:
    """Whether :func:`consume` would accept ``raw_code`` for ``device``, without consuming it."""
    code = normalize(raw_code)
    if not code:
        return False
    return matching_step(device.secret_bytes(), code, after_step=device.last_t) is not None


def consume(device, raw_code: str) -> bool:
    """Whether ``raw_code`` is the device's code for a step later than the last accepted one; if so, that step
    becomes the last accepted one (``device.last_t``). Call on the locked row (:mod:`devices.verification`)."""
    code = normalize(raw_code)
    step = matching_step(device.secret_bytes(), code, after_step=device.last_t) if code else None
    if step is None:
        return False
    device.last_t = step
    return True
