"""Help-desk bypass codes (BND-10): a few single-use codes, valid for at most an hour, read out by the desk."""

from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from identity import audit
from identity.models import User
from identity.selectors import same_person

from . import backup_codes, errors
from .models import BypassCodeDevice
from .services import notify_person

MAX_CODES = 10
VALID_MINUTES = (15, 30, 60)


def current_bypass_codes(user) -> BypassCodeDevice | None:
    """The person's set that still works now, if any (never the codes: only their hashes exist)."""
    return BypassCodeDevice.objects.devices_for_user(user, confirmed=True).first()


def issue_bypass_codes(user, *, actor: User, count: int, valid_minutes: int, ip: str | None = None) -> list[str]:
    """Make ``count`` codes valid for ``valid_minutes`` and return them: the only time they exist in clear.

    A previous set stops working. Audits ``bypass_codes.issued`` and emails the person a notice (BND-03). Raises
    ``ValidationError`` for a count outside 1-10 or a lifetime not in 15/30/60 minutes, or an actor acting on
    their own account. The caller (the help desk) must have recorded the person's identity check (BND-07) and,
    for a staff account, a second approver (BND-08).
    """
    if not 1 <= count <= MAX_CODES:
        raise ValidationError(errors.BYPASS_COUNT, code="count")
    if valid_minutes not in VALID_MINUTES:
        raise ValidationError(errors.BYPASS_LIFETIME, code="lifetime")
    if same_person(actor, user):
        raise ValidationError(errors.NOT_ON_OWN_ACCOUNT, code="own_account")
    with transaction.atomic():
        User.objects.select_for_update().get(pk=user.pk)
        replaced = BypassCodeDevice.objects.filter(user=user, confirmed=True).update(confirmed=False)
        valid_until = timezone.now() + timedelta(minutes=valid_minutes)
        device = BypassCodeDevice.objects.create(
            user=user, name="Bypass codes from the help desk", confirmed=True, valid_until=valid_until, issued_by=actor
        )
        codes = backup_codes.store_new_codes(device, count)
        audit.record(
            "bypass_codes.issued",
            actor=actor,
            subject=user,
            ip=ip,
            details={
                "device": device.persistent_id,
                "count": count,
                "valid_minutes": valid_minutes,
                "replaced_sets": replaced,
            },
        )
        notify_person(user, event="bypass_codes.issued")
    return codes
