"""A passcode at the VPN's doors (the Auth API and RADIUS): :func:`verify_passcode`, with a faster first read.

Every VPN connection at 9 am comes here, so in the common case (a person whose codes come from authenticator
apps) one prepared statement reads and locks the person's row and their confirmed apps (OTP-01, OTP-04), instead
of one query for the person, one per kind of device, and one lock per row. What follows is the web's own rule,
:func:`identity.services.verify_typed_code_on_locked_row`, on those locked rows: the same checks, writes and
audit events, in the same code. Whatever the first read cannot settle alone (a person with other devices that
take a code and a code that is not an app's, or a lock whose timed release is due) goes the general way, through
:func:`identity.services.verify_typed_code`, before anything is written.
"""

from dataclasses import dataclass
from functools import cache
from types import SimpleNamespace

from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models import Model
from django_otp import device_classes

from devices import totp
from devices.models import AuthenticatorAppDevice
from identity import audit, sql
from identity.models import User
from identity.services import verify_typed_code, verify_typed_code_on_locked_row

from .people import may_use_vpn, vpn_factors

# The outcome for a person who may not use the VPN (unknown, inactive, not approved, locked) or has no device that
# takes a code: nothing was checked or written; the door refuses and audits the refusal.
REFUSED = "refused"


def _fields(model: type[Model], wanted: set[str]) -> list[str]:
    # In the model's field order, which ``from_db`` expects the values in.
    return [field.attname for field in model._meta.concrete_fields if field.attname in wanted]


# What the sign-in rule reads of the person and of each app; the rest of each row is left deferred.
_PERSON_FIELDS = _fields(User, {"id", "vpn_access", "locked_at", "locked_until", "second_factor_failures"})
_APP_FIELDS = _fields(
    AuthenticatorAppDevice,
    {
        "id",
        "confirmed",
        "encrypted_secret",
        "last_t",
        "last_used_at",
        "throttling_failure_count",
        "throttling_failure_timestamp",
    },
)


@dataclass(frozen=True)
class Verdict:
    """What a passcode check decided: a ``SecondFactorOutcome`` value or :data:`REFUSED`, and the person (None
    when unknown) for the door's audit of a refusal."""

    outcome: str
    person_id: int | None

    def audit_refusal(self, action: str, *, ip: str | None, context: dict) -> None:
        """Audit a :data:`REFUSED` verdict as ``action``."""
        reason = "unknown person" if self.person_id is None else "not allowed or no device"
        subject = SimpleNamespace(pk=self.person_id) if self.person_id else None
        audit.record(action, subject=subject, ip=ip, details={**context, "reason": reason})


def verify_passcode(username: str, code: str, *, ip: str | None, entry_point: str, context: dict) -> Verdict:
    """Check a passcode typed at a VPN door for the active person named ``username``.

    Runs in the caller's transaction, which must commit or roll back the whole request (row locks are held until
    then). A person who may use the VPN and has devices that take a code gets the outcome of the sign-in rule
    (written and audited there, ``context`` joining the details, ``entry_point`` naming the door); anyone else gets
    :data:`REFUSED` with nothing written, and the caller audits the refusal.
    """
    verdict = _verify_on_first_read(username, code, ip=ip, entry_point=entry_point, context=context)
    if verdict is not None:
        return verdict
    user = User.objects.filter(username=username, is_active=True).first()
    if may_use_vpn(user) and (factors := vpn_factors(user)).usable:
        outcome = verify_typed_code(
            user, devices=factors.typed, code=code, ip=ip, entry_point=entry_point, context=context
        )
        return Verdict(outcome, user.pk)
    return Verdict(REFUSED, user.pk if user else None)


def _other_typed_devices_sql() -> str:
    """``EXISTS`` over every other model whose devices take a typed code (phones, backup and bypass codes).

    Built from django-otp's registry, as ``vpn_factors`` lists devices, so a new kind of device is covered
    without touching this module. It may say yes where the general path finds nothing usable (an expired bypass
    set): that only sends the check down the general path.
    """
    tables = [
        model._meta.db_table
        for model in device_classes()
        if getattr(model, "accepts_typed_code", True) and model is not AuthenticatorAppDevice
    ]
    checks = [f"EXISTS (SELECT 1 FROM {table} WHERE user_id = p.id AND confirmed)" for table in tables]  # noqa: S608
    return " OR ".join(checks) or "false"


@cache
def _lock_sql() -> str:
    # Built on first use, once the app registry is ready; the same text every time, so it stays prepared.
    user, app = User._meta.db_table, AuthenticatorAppDevice._meta.db_table
    person_columns = ", ".join(f"p.{name}" for name in _PERSON_FIELDS)
    app_columns = ", ".join(f"d.{name}" for name in _APP_FIELDS)
    # The person's row first, then their apps in id order: the order every verification takes its locks in.
    return (
        f"WITH p AS (SELECT {', '.join(_PERSON_FIELDS)} FROM {user} "  # noqa: S608
        "WHERE username = %(username)s AND is_active FOR UPDATE) "
        f"SELECT {person_columns}, ({_other_typed_devices_sql()}) AS others, {app_columns} FROM p "
        f"LEFT JOIN LATERAL (SELECT * FROM {app} WHERE user_id = p.id AND confirmed ORDER BY id FOR UPDATE) d ON true"
    )


def _verify_on_first_read(
    username: str, code: str, *, ip: str | None, entry_point: str, context: dict
) -> Verdict | None:
    """:func:`verify_passcode` from one locked read of the person and their apps, or None when that read cannot
    settle it: then nothing has been written, and the general path decides."""
    if connection.vendor != "postgresql" or not username:
        return None
    rows = sql.execute(_lock_sql(), {"username": username}, fetch="all")
    if not rows:
        return Verdict(REFUSED, None)
    width = len(_PERSON_FIELDS)
    person = User.from_db(DEFAULT_DB_ALIAS, _PERSON_FIELDS, rows[0][:width])
    others = rows[0][width]
    if person.locked_at is not None and not person.is_locked:
        return None  # the timed release is due: the general path lifts and audits it
    if not may_use_vpn(person):
        return Verdict(REFUSED, person.pk)
    apps = [
        AuthenticatorAppDevice.from_db(DEFAULT_DB_ALIAS, _APP_FIELDS, row[width + 1 :])
        for row in rows
        if row[width + 1 + _APP_FIELDS.index("id")] is not None
    ]
    if not apps:
        return None if others else Verdict(REFUSED, person.pk)
    # With other devices in play, the first read settles only a code that is an app's; a look that changes nothing
    # (the step is compared, not consumed), so a code for another device goes on untouched.
    if others and not any(app.verify_is_allowed()[0] and totp.is_next_code(app, code) for app in apps):
        return None
    outcome = verify_typed_code_on_locked_row(
        person,
        devices=apps,
        code=code,
        ip=ip,
        entry_point=entry_point,
        context=context,
        verify=lambda app, typed: app.verify_token_on_locked_row(typed),
    )
    return Verdict(outcome, person.pk)
