"""The VPN's hot path: a passcode from an authenticator app, checked in two statements, the second auditing it.

Every VPN connection at 9 am comes here, so the common case (the code is the app's) skips the ORM: one prepared
statement locks the person's row and their confirmed apps (OTP-01, OTP-04), the code is checked by the same
functions the app device uses (:func:`devices.totp.consume`, django-otp's back-off), and one statement writes
the outcome and appends its audit event. The rules are those of :func:`identity.services.verify_typed_code`, and the
tests hold the two to the same outcomes and the same writes. Whatever this lane does not decide on its own it
hands back untouched (nothing written yet) to that general path: a code that is not the app's while the person
has other devices that take a code (a texted code, backup or bypass codes), a lock whose timed release is due,
and the failure that locks the account (its notice goes through the outbox).
"""

from dataclasses import dataclass
from types import SimpleNamespace

from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_otp import device_classes

from devices import totp
from devices.models import AuthenticatorAppDevice
from identity import audit, sql
from identity.models import User
from identity.services import SecondFactorOutcome

_WANTED = {"id", "encrypted_secret", "last_t", "throttling_failure_count", "throttling_failure_timestamp"}
# In the model's field order, which ``from_db`` expects the values in.
_APP_FIELDS = [f.attname for f in AuthenticatorAppDevice._meta.concrete_fields if f.attname in _WANTED]


@dataclass(frozen=True)
class Verdict:
    """What the lane decided: the outcome, and the person (None when unknown) for the answer's audit."""

    outcome: str | None  # a SecondFactorOutcome value; None: the person may not use the VPN, or has no device
    person_id: int | None

    def audit_refusal(self, action: str, *, ip: str | None, context: dict) -> None:
        """Audit the refusal of someone who may not use the VPN or has no device (outcome None), as ``action``."""
        reason = "unknown person" if self.person_id is None else "not allowed or no device"
        subject = SimpleNamespace(pk=self.person_id) if self.person_id else None
        audit.record(action, subject=subject, ip=ip, details={**context, "reason": reason})


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


def _lock_sql() -> str:
    user, app = User._meta.db_table, AuthenticatorAppDevice._meta.db_table
    app_columns = ", ".join(f"d.{name}" for name in _APP_FIELDS)
    # The person's row first, then their apps, in id order: the order every verification takes its locks in.
    return (
        f"WITH p AS (SELECT id, vpn_access, locked_at, locked_until, second_factor_failures FROM {user} "  # noqa: S608
        "WHERE username = %(username)s AND is_active FOR UPDATE) "
        f"SELECT p.id, p.vpn_access, p.locked_at, p.locked_until, p.second_factor_failures, "
        f"({_other_typed_devices_sql()}) AS others, {app_columns} FROM p LEFT JOIN LATERAL "
        f"(SELECT * FROM {app} WHERE user_id = p.id AND confirmed ORDER BY id FOR UPDATE) d ON true"
    )


# The outcome, one statement each: the app's step consumed, or a back-off failure on each app that tried; and the
# person's consecutive failures reset or counted (OTP-01); and its audit event appended (one round trip for all).
_OUTCOMES = {
    "success": (
        "WITH d AS (UPDATE {app} SET last_t = %(step)s, throttling_failure_count = 0, "
        "throttling_failure_timestamp = NULL, last_used_at = %(now)s WHERE id = %(device)s RETURNING 1), "
        "u AS (UPDATE {user} SET second_factor_failures = 0 WHERE id = %(person)s AND second_factor_failures <> 0 "
        "RETURNING 1) "
    ),
    "failure": (
        "WITH d AS (UPDATE {app} SET throttling_failure_count = throttling_failure_count + 1, "
        "throttling_failure_timestamp = %(now)s WHERE id = ANY(%(devices)s) RETURNING 1), "
        "u AS (UPDATE {user} SET second_factor_failures = second_factor_failures + 1 WHERE id = %(person)s "
        "RETURNING 1) "
    ),
}
# PostgreSQL runs a data-modifying CTE that nothing reads after the rest of the statement: here, after the append
# has taken the audit chain's lock, which every check waits for. Read by this filter (evaluated once, before the
# append), the updates run first and the chain's lock is held for the append and the commit only.
_UPDATES_FIRST = " WHERE (SELECT count(*) FROM d) + (SELECT count(*) FROM u) >= 0"
_STATEMENTS: dict[str, str] = {}


def _statement(name: str) -> str:
    # Built on first use, once the app registry is ready; the same text every time, so it stays prepared.
    if name not in _STATEMENTS:
        tables = {"user": User._meta.db_table, "app": AuthenticatorAppDevice._meta.db_table}
        if name == "lock":
            _STATEMENTS[name] = _lock_sql()
        else:
            _STATEMENTS[name] = _OUTCOMES[name].format(**tables) + audit.APPEND_SQL + _UPDATES_FIRST
    return _STATEMENTS[name]


def check(username: str, code: str, *, ip: str | None, entry_point: str, context: dict) -> Verdict | None:
    """Decide a passcode for ``username`` (an active person) if this lane can; None hands it to the general path.

    Runs inside the caller's transaction, which must commit or roll back the whole request (the locks are held
    until then). A decided outcome commits that transaction with its last statement when the caller's block is the
    outermost :func:`identity.sql.request_transaction` (:func:`identity.sql.execute_and_commit`): the audit
    chain's lock is released at once, and what the caller does after that (building the answer) cannot undo the
    outcome; an error there answers with a refusal. Decided outcomes are written and audited here, as
    ``verify_typed_code`` writes them: a good app code consumes its step, resets that app's back-off and the
    person's failure count (``signin.second_factor_ok``); a wrong one, for a person whose only typed codes are
    apps, counts one back-off failure on each app that was allowed to try and one failure toward the lockout
    (``signin.second_factor_failed``). A person who may not use the VPN (unknown, not approved, locked) or has
    no device gets ``Verdict(None, ...)`` and nothing is written; the caller audits the refusal.
    """
    if connection.vendor != "postgresql" or not username:
        return None
    rows = sql.execute(_statement("lock"), {"username": username}, fetch="all")
    if not rows:
        return Verdict(None, None)
    person_id, vpn_access, locked_at, locked_until, failures, others = rows[0][:6]
    if locked_at is not None and not User.lock_in_force(locked_at, locked_until):
        return None  # the timed release is due: the general path lifts and audits it
    if vpn_access != User.VpnAccess.APPROVED or User.lock_in_force(locked_at, locked_until):
        return Verdict(None, person_id)
    # The app's own model (its back-off and its code check), built from the locked row's columns only.
    apps = [
        AuthenticatorAppDevice.from_db(None, _APP_FIELDS, row[6:])
        for row in rows
        if row[6 + _APP_FIELDS.index("id")] is not None
    ]
    if not apps:
        return None if others else Verdict(None, person_id)
    allowed = [app for app in apps if app.verify_is_allowed()[0]]
    for app in allowed:
        # consume() compares every step in constant time and moves last_t on the unsaved copy only.
        if totp.consume(app, code):
            return _record_success(person_id, app, ip=ip, entry_point=entry_point, context=context)
    if others or failures + 1 >= settings.LOCKOUT_THRESHOLD:
        return None
    return _record_failure(person_id, failures, apps, allowed, ip=ip, entry_point=entry_point, context=context)


def _record_success(person_id: int, app, *, ip, entry_point: str, context: dict) -> Verdict:
    params = {"step": app.last_t, "now": timezone.now(), "device": app.pk, "person": person_id}
    details = {**context, "factor": app.factor_name, "entry_point": entry_point}
    sql.execute_and_commit(
        _statement("success"), params | _audit_params("signin.second_factor_ok", person_id, ip, details), fetch="one"
    )
    return Verdict(SecondFactorOutcome.OK, person_id)


def _record_failure(person_id, failures, apps, allowed, *, ip, entry_point: str, context: dict) -> Verdict:
    params = {"now": timezone.now(), "devices": [app.pk for app in allowed], "person": person_id}
    # As the general path names it: the device's kind when there is one device, else "passcode". The person's row
    # is locked, so the count read with it, plus this failure, is the count now.
    factor = apps[0].factor_name if len(apps) == 1 else "passcode"
    details = {**context, "factor": factor, "entry_point": entry_point, "consecutive_failures": failures + 1}
    sql.execute_and_commit(
        _statement("failure"),
        params | _audit_params("signin.second_factor_failed", person_id, ip, details),
        fetch="one",
    )
    return Verdict(SecondFactorOutcome.WRONG if allowed else SecondFactorOutcome.THROTTLED, person_id)


def _audit_params(action: str, person_id: int, ip, details: dict) -> dict:
    person = SimpleNamespace(pk=person_id)  # all the audit log reads of a person; no User row to build
    return audit.append_params(action, actor=person, subject=person, ip=ip, details=details)
