"""The one path every factor's code takes: lock the device row, check the back-off, check and consume the code,
record the outcome, save (OTP-04).

The models' ``verify_token`` (what django-otp calls) hand this their own check, so the models import nothing
above them and every factor (app, phone, backup codes, bypass codes, security key) follows the same steps and
the same rule for unconfirmed devices: a device verifies only when it is confirmed, or when it is waiting for
its first code (``awaiting_first_code``: an app whose new secret a setup or a phone change has not bound yet).
Imports nothing from this app.
"""

from collections.abc import Callable
from typing import Any

from django.db import transaction

from identity import sql

THROTTLE_FIELDS = ("throttling_failure_timestamp", "throttling_failure_count")


def verify(device, check: Callable[[Any], bool], *, consumes: tuple[str, ...] = ()) -> bool:
    """Check a code against ``device`` once, under the device's row lock; return whether it was good.

    ``check(locked)`` gets the freshly read, locked row; it compares the code in constant time and consumes it
    (its own rows, or the device fields it names in ``consumes``, which are saved whatever the outcome). A good
    code resets django-otp's back-off and stamps ``last_used_at``; a wrong one counts a failure. A device
    refused by the back-off or by the rule for unconfirmed devices is not checked and nothing is written.
    Runs in the caller's transaction when there is one. The outcome is copied onto ``device``, so the caller
    needs no second read.
    """
    model = type(device)
    # No savepoint inside the caller's transaction: an error here fails the whole attempt (fail closed).
    with transaction.atomic(savepoint=False):
        locked = model.objects.select_for_update().get(pk=device.pk)
        ok = verify_locked_row(locked, check, consumes=consumes)
    for field in model._meta.concrete_fields:
        setattr(device, field.attname, getattr(locked, field.attname))
    return ok


def verify_locked_row(locked, check: Callable[[object], bool], *, consumes: tuple[str, ...] = ()) -> bool:
    """:func:`verify` on a device row the caller has already locked in its transaction and passes as ``locked``
    (freshly read with the lock): the same rule, without reading the row again."""
    if not (locked.confirmed or getattr(locked, "awaiting_first_code", False)):
        return False
    allowed, _ = locked.verify_is_allowed()
    if not allowed:
        return False
    ok = bool(check(locked))
    if ok:
        locked.throttle_reset(commit=False)
        locked.set_last_used_timestamp(commit=False)
    else:
        locked.throttle_increment(commit=False)
    sql.save_fields(locked, (*THROTTLE_FIELDS, "last_used_at", *consumes))
    return ok
