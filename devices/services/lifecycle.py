"""A device in use: rename, retire, report lost, and backup codes (BND-02, BND-04, BND-05, BND-06).

Every function is one whole state change (rows, audit event, outbound message in one transaction); callers
pass plain values (``actor``, ``ip``), never a request; refusals raise ``ValidationError`` with a text from
:mod:`devices.errors`.
"""

from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from identity import audit
from identity.models import User
from identity.open_sessions import end_sessions

from .. import errors, selectors
from ..models import (
    AuthenticatorAppDevice,
    BackupCodeDevice,
    PhoneDevice,
    Registration,
    SecurityKeyDevice,
)
from .common import (
    app_device_name,
    device_ids,
    hold_setup_if_no_factor_left,
    lock_registration,
    phone_device_name,
    require_recent_verification,
    require_setup_open,
    retire_devices,
    security_key_device_name,
)
from .notices import notify_person


def rename_registration(registration: Registration, *, label: str, actor: User, ip: str | None = None) -> Registration:
    """Give a device in use a new name, its factors' names with it. Audits ``device.renamed``.

    Allowed while its app moves to a new phone too: a name binds nothing. Raises ``ValidationError`` for a name
    out of bounds or a device not in use.
    """
    label = (label or "").strip()
    if not 1 <= len(label) <= 64:
        raise ValidationError(errors.LABEL_INVALID, code="label")
    with transaction.atomic():
        registration = lock_registration(registration)
        if registration.status not in Registration.IN_USE:
            raise ValidationError(errors.NOT_ACTIVE, code="not_active")
        old = registration.label
        registration.label = label
        registration.save(update_fields=["label", "updated_at"])
        app_ids = [pk for pk in (registration.app_device_id, registration.pending_app_device_id) if pk]
        if app_ids:
            AuthenticatorAppDevice.objects.filter(pk__in=app_ids).update(name=app_device_name(label))
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


def _take_out_of_use(registration: Registration, *, actor: User | None) -> set[str]:
    """Retire the locked registration and every factor it holds; return their persistent ids.

    The caller holds the transaction and the row lock, has checked the status, ends the sessions and audits.
    """
    retire_devices(registration)
    ids = device_ids(registration)
    registration.status = Registration.Status.RETIRED
    registration.retired_at = timezone.now()
    registration.retired_by = actor if getattr(actor, "pk", None) else None
    registration.pending_app_device = None
    registration.save(update_fields=["status", "retired_at", "retired_by", "pending_app_device", "updated_at"])
    return ids


def retire_registration(
    registration: Registration,
    *,
    actor: User,
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
        registration = lock_registration(registration)
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
        retired = _take_out_of_use(registration, actor=actor)
        sessions_ended = end_sessions(registration.user, verified_with=retired, keep=session_key)
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


def retire_all_devices(
    user: User, *, reason: str, actor: User | None = None, ip: str | None = None
) -> list[Registration]:
    """Retire every device of the person, pending ones too, keeping their history (BND-04); return them.

    For an account that no longer signs in (a directory leaver past DIRECTORY_RETAIN_DAYS): no step-up, no
    last-device rule and no notice. Each retirement is audited ``device.retired`` with ``reason``.
    """
    retired = []
    with transaction.atomic():
        for registration in Registration.objects.filter(user=user).exclude(status=Registration.Status.RETIRED):
            registration = lock_registration(registration)
            if registration.status == Registration.Status.RETIRED:
                continue
            ended = end_sessions(user, verified_with=_take_out_of_use(registration, actor=actor))
            details = {"registration": registration.pk, "kind": registration.kind, "reason": reason}
            audit.record(
                "device.retired", actor=actor, subject=user, ip=ip, details=details | {"sessions_ended": ended}
            )
            retired.append(registration)
    return retired


def report_lost(
    registration: Registration,
    *,
    actor: User,
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
        registration = lock_registration(registration)
        if registration.status not in (Registration.Status.ACTIVE, Registration.Status.REACTIVATING):
            raise ValidationError(errors.NOT_ACTIVE, code="not_active")
        lost = _take_out_of_use(registration, actor=actor)
        last_factor = hold_setup_if_no_factor_left(registration.user)
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


def generate_backup_codes(
    user: User,
    *,
    actor: User,
    verified_at: datetime | None,
    replacing: str | None = None,
    ip: str | None = None,
) -> list[str]:
    """Make a new set of 10 backup codes and return them: the only time they exist in clear.

    The previous set stops working. Needs a recent second factor (BND-01).
    Audits ``backup_codes.generated`` and emails a notice (BND-03, BND-06).

    ``replacing`` is the set the person's form was shown with (its persistent id, "" for none). When another set
    was made since, the request is a second submit of that form (a reload of the page that showed the codes, a
    double click): nothing is made, so the set just shown stays the one that works, and ``ValidationError`` (code
    ``already_made``) is raised. ``None`` skips the check, for callers with no form.
    """
    from .. import backup_codes

    require_recent_verification(user, verified_at)
    require_setup_open(user)
    with transaction.atomic():
        User.objects.select_for_update().get(pk=user.pk)
        if replacing is not None:
            current = selectors.current_backup_code_set(user)
            if replacing != (current.persistent_id if current else ""):
                raise ValidationError(errors.BACKUP_CODES_ALREADY_MADE, code="already_made")
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
