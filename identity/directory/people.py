"""Joiners, movers and leavers: the one door through which a directory changes a person (LDAP sync and SCIM alike).

The contract (each function one whole state change, audited, in one transaction; ``origin`` goes into every audit
event's details, e.g. ``{"sync_run": 12}`` or ``{"scim_client": 3}``):

- ``apply_record(record, *, origin, actor=None, ip=None) -> str``: creates (a joiner: no local password, no device),
  updates (a mover: old and new values audited; an email change notifies both addresses and voids links sent to the
  old one, DIR-06), deactivates (``record.active`` False) or reactivates the person ``record`` names; returns one of
  ``"created" | "updated" | "deactivated" | "reactivated" | "unchanged"``. Raises ``DirectoryConflict`` when a local
  account already has the institution ID (only ``link_local_account`` joins them).
- ``create_people(records, *, origin, actor=None) -> dict`` and ``update_people(records, *, origin, actor=None) ->
  dict``: joiners and movers in bulk (the LDAP sync), each ending as ``apply_record`` would for each record.
- ``apply_records(records, *, origin, actor=None) -> dict``: ``apply_record`` for each, the outcomes counted.
- ``deactivate_person(user, *, reason, origin, actor=None, ip=None) -> bool``: the one leaver service (DIR-02).
- ``apply_password_change(user, *, stamp, origin, actor=None, ip=None) -> bool``: the directory's password-changed
  stamp; a new one ends the person's sessions.
- ``reactivate_person(user, *, origin, actor=None, ip=None) -> bool``.
- ``apply_group_change(person, *, roles=None, vpn_member=None, origin, actor=None, ip=None) -> bool``: a SCIM
  client's group change for one person, kept whether or not they are active.
- ``retire_devices_of_leavers(*, now=None) -> int``: devices of people deactivated longer than DIRECTORY_RETAIN_DAYS.
- ``link_local_account(user, record, *, actor) -> User``: a superuser's explicit link of an existing local account.

What a person loses or is told through ``devices`` (links, bypass codes, devices, emails) goes through the hooks
of :mod:`identity.directory.hooks`, in the same transaction.
"""

import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from functools import cache
from typing import Any, NamedTuple, Protocol

from django.conf import settings
from django.contrib.auth.hashers import UNUSABLE_PASSWORD_PREFIX, UNUSABLE_PASSWORD_SUFFIX_LENGTH
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.db.models import CharField, Q, QuerySet
from django.utils import timezone

from .. import audit, open_sessions, sql
from .. import phone_numbers as numbers
from .. import services as identity_services
from ..models import User
from ..selectors import STAFF_GROUPS
from . import hooks
from .ldap_source import DirectoryReadError, LDAPReader
from .records import DirectoryRecord

CREATED, UPDATED, DEACTIVATED, REACTIVATED, UNCHANGED = "created", "updated", "deactivated", "reactivated", "unchanged"
# What the directory owns of a person: read-only everywhere else (the admin, the desk's "change details").
OWNED_FIELDS = ("first_name", "last_name", "email", "department")
# The directory's mobile number: owned by the directory too, but kept apart from the fields above because it is
# stored in E.164 and audited masked (AC-05).
MOBILE_FIELD = "directory_mobile"
# The directory's password-changed stamp, as last read (apply_password_change).
PASSWORD_STAMP_FIELD = "directory_password_changed"
EXTERNAL_ID_FIELD = "directory_external_id"
_SOURCES = (User.Source.LDAP, User.Source.SCIM)
# The reasons given when a directory's VPN group approves or revokes VPN access (words for the person and the audit
# log; nothing reads them back: a SCIM client's group marks the person, ``scim_vpn_by_group``).
VPN_GROUP_JOINED = "member of the directory's VPN group"
VPN_GROUP_LEFT = "not in the directory's VPN group"


class DirectoryConflict(Exception):
    """The directory names an institution ID that belongs to another account here (a local one, or a person from
    another directory entry). Nothing was changed; a superuser links a local account with ``link_directory_account``.
    """

    def __init__(self, institution_id: str, existing: User):
        self.institution_id = institution_id
        self.existing = existing
        kind = "a local account" if not existing.from_directory else "another directory entry's person"
        super().__init__(
            f"The institution ID {institution_id!r} already belongs to {kind} here: it is not taken over. "
            "A superuser can link a local account to its directory entry (manage.py link_directory_account)."
        )


# A record's values, the person's columns that keep them (each value must fit its column's max_length) and their
# names in an error's words.
_STORED_AS = {
    "institution_id": ("username", "institution ID"),
    "first_name": ("first_name", "first name"),
    "last_name": ("last_name", "last name"),
    "email": ("email", "email address"),
    "department": ("department", "department"),
    "directory_id": ("directory_id", "stable directory ID"),
    "dn": ("directory_dn", "DN"),
    "external_id": (EXTERNAL_ID_FIELD, "external ID"),
}


@cache
def _limits() -> list[tuple[str, str, int]]:
    """(record attribute, its words, its column's max_length) for each of ``_STORED_AS``, read from the model once."""
    limits = []
    for name, (column, label) in _STORED_AS.items():
        field = User._meta.get_field(column)
        if isinstance(field, CharField) and field.max_length is not None:
            limits.append((name, label, field.max_length))
    return limits


def _check_record(record: DirectoryRecord) -> None:
    if record.source not in _SOURCES:
        raise ValidationError(f"A directory record's source is one of {', '.join(_SOURCES)}, not {record.source!r}.")
    if not record.directory_id.strip() or not record.institution_id.strip():
        raise ValidationError("A directory record needs its stable directory ID and the institution ID.")
    for name, label, limit in _limits():
        value = getattr(record, name)
        if len(value) > limit:
            raise ValidationError(
                f"The directory's {label} for {record.institution_id[:150]} is {len(value)} characters long; "
                f"at most {limit} fit here. Shorten it in the directory."
            )


class _WithMobile(Protocol):
    @property
    def mobile(self) -> str: ...


def mobile_of(record: _WithMobile) -> str:
    """The mobile number ``record`` (a DirectoryRecord, or the sync reader's entry) gives, as the person's
    ``directory_mobile`` keeps it: E.164, or "" when the directory has none or holds something that is not a valid
    number (never offered to the person then)."""
    return numbers.to_e164(record.mobile)


def _audited(name: str, value: Any) -> Any:
    return numbers.mask_phone_number(value) if name == MOBILE_FIELD and value else value


def _lock(user: User) -> User:
    return User.objects.select_for_update().get(pk=user.pk)


def _holder(record: DirectoryRecord, person: User | None) -> QuerySet[User]:
    """The accounts other than ``person`` that hold ``record``'s institution ID, whatever its case: a SCIM userName
    is case-insensitive (RFC 7643), and so is Active Directory's, so "Admin" is not given beside a local "admin".
    Asked through the index on ``UPPER(username)``; the sync's compare asks the same in SQL."""
    holders = User.objects.filter(username__iexact=record.institution_id)
    return holders if person is None else holders.exclude(pk=person.pk)


def apply_record(record: DirectoryRecord, *, origin: dict, actor: User | None = None, ip: str | None = None) -> str:
    """Bring the person ``record`` names (by source and stable directory ID) in line with it; see the module doc.

    A record with ``active`` False for someone not here yet creates nobody (``"unchanged"``). The returned word is
    the biggest thing that happened: a leaver whose name also changed is ``"deactivated"``. Raises
    ``ValidationError`` for a record without its IDs, and ``DirectoryConflict`` (nothing changed) when the
    institution ID belongs to another account. The caller (the sync, SCIM) decided the record is to be applied:
    the guards against mass deactivation (DIR-03) are theirs.
    """
    _check_record(record)
    with transaction.atomic():
        person = User.objects.select_for_update().filter(source=record.source, directory_id=record.directory_id).first()
        holder = _holder(record, person).select_for_update().first()
        if holder is not None:
            raise DirectoryConflict(record.institution_id, holder)
        if person is None:
            if not record.active:
                return UNCHANGED
            try:
                with transaction.atomic():
                    _create(record, origin=origin, actor=actor, ip=ip)
                return CREATED
            except IntegrityError:
                # Created meanwhile by a concurrent call (a SCIM client's retry): the unique indexes made this one
                # wait for it, and the row it committed is visible now. Read again, once.
                person = (
                    User.objects.select_for_update()
                    .filter(source=record.source, directory_id=record.directory_id)
                    .first()
                )
                holder = _holder(record, person).first()
                if holder is not None:
                    raise DirectoryConflict(record.institution_id, holder) from None
                if person is None:
                    raise
        if person.username == record.institution_id:
            changed = _apply_changes(person, record, origin=origin, actor=actor, ip=ip)
        else:
            try:
                with transaction.atomic():
                    changed = _apply_changes(person, record, origin=origin, actor=actor, ip=ip)
            except IntegrityError:
                # Renamed to an ID created meanwhile in another case (the unique index on UPPER(username) made this
                # wait for it): refused as the check above refuses an ID held already.
                holder = _holder(record, person).first()
                if holder is None:
                    raise
                raise DirectoryConflict(record.institution_id, holder) from None
        if not record.active:
            if deactivate_person(person, reason="disabled in the directory", origin=origin, actor=actor, ip=ip):
                return DEACTIVATED
        elif reactivate_person(person, origin=origin, actor=actor, ip=ip):
            return REACTIVATED
        return UPDATED if changed else UNCHANGED


def create_people(records: list[DirectoryRecord], *, origin: dict, actor: User | None = None) -> dict[str, Any]:
    """Joiners in bulk (the LDAP sync's first run brings in a whole institution): the same rows, audit events, roles,
    VPN access and welcome emails as :func:`apply_record` creating each, in one transaction and one INSERT.

    Optimistic: the enabled records are inserted as joiners without first asking who is here. When the insert meets
    a unique violation (a record's directory ID or institution ID is already here: a mover, a return, a conflict, a
    concurrent SCIM call's person, or the same ID twice in ``records``), that transaction is rolled back and every
    record goes through :func:`apply_record` one by one: correct for any records, cheap only for joiners (the sync
    sends only the entries it found new and whose institution ID nobody holds). A disabled record, or one that fails
    its checks, always goes one by one, after. Returns the count of each outcome, with ``"conflicts"``: a list of
    (record, error) for the records refused, the error a ``DirectoryConflict`` or a ``ValidationError`` (a record
    without its IDs, or a value longer than its column); the others are applied all the same.
    """
    outcomes: dict = {"conflicts": []}
    fresh, later = _split(records, lambda record: record.active)
    if fresh:
        try:
            with transaction.atomic():
                outcomes[CREATED] = _create_fresh(fresh, origin=origin, actor=actor)
        except IntegrityError:
            fresh, later = [], records
    return apply_records(later, origin=origin, actor=actor, outcomes=outcomes)


def _split(
    records: list[DirectoryRecord], plain: Callable[[DirectoryRecord], bool]
) -> tuple[list[DirectoryRecord], list[DirectoryRecord]]:
    """The records that pass their checks and ``plain(record)``, and the others (for :func:`apply_record`)."""
    fresh: list[DirectoryRecord] = []
    later: list[DirectoryRecord] = []
    for record in records:
        try:
            _check_record(record)
        except ValidationError:
            later.append(record)
            continue
        (fresh if plain(record) else later).append(record)
    return fresh, later


def apply_records(
    records: list[DirectoryRecord], *, origin: dict, actor: User | None = None, outcomes: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Each record through :func:`apply_record`, in order, its outcome counted into ``outcomes`` (a new dict if
    None) and returned; a refused record (a ``DirectoryConflict``, a ``ValidationError``) goes with its error into
    ``outcomes["conflicts"]``, and the others are applied all the same."""
    outcomes = {"conflicts": []} if outcomes is None else outcomes
    for record in records:
        try:
            outcome = apply_record(record, origin=origin, actor=actor)
        except (DirectoryConflict, ValidationError) as error:
            outcomes["conflicts"].append((record, error))
            continue
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def _create_fresh(records: list[DirectoryRecord], *, origin: dict, actor: User | None) -> int:
    rows = [_joiner_fields(record) for record in records]
    pks = _insert_people(rows)
    audit.record_many(
        _created_event(_Ref(pk), row, origin=origin, actor=actor, ip=None) for pk, row in zip(pks, rows, strict=True)
    )
    # Roles, VPN access and the welcome email, for the joiners who get any: a fresh person with no role and no VPN
    # group has nothing to grant or revoke.
    wanted = {pk: record for pk, record in zip(pks, records, strict=True) if _after_create_needed(record)}
    for pk, person in User.objects.in_bulk(list(wanted)).items():
        _after_create(person, wanted[pk], origin=origin, actor=actor, ip=None, audited=True)
    return len(pks)


def update_people(records: list[DirectoryRecord], *, origin: dict, actor: User | None = None) -> dict[str, Any]:
    """Movers in bulk (a sync's changed names, emails, departments, DNs, mobile numbers, roles, VPN access): the
    same rows, audit events, emails and voided links as :func:`apply_record` updating each, in one transaction.

    The people are locked in one query and written with one statement (PostgreSQL; ``bulk_update`` elsewhere); what
    changes for each is the rule :func:`apply_record` applies (``_changes``); ``directory.person_updated`` and
    ``person.email_changed`` are appended with ``audit.record_many``; an email change runs the ``email_changed``
    hook for that person (both addresses told, links sent to the old one voided: DIR-06); roles and VPN access as
    :func:`apply_record` grants and revokes them. A record that is not a plain mover (nobody here has its directory
    ID, it or its person is not active, its new institution ID is held here in any case or wanted by another record
    in another case, or the write meets a unique violation: everything is then rolled back) goes through
    :func:`apply_record` one by one, after. Returns the counts and ``"conflicts"`` as :func:`create_people` does.
    """
    outcomes: dict = {"conflicts": []}
    movers, later = _split(records, lambda record: record.active)
    if movers:
        try:
            with transaction.atomic():
                moved, others = _update_movers(movers, origin=origin, actor=actor)
        except IntegrityError:
            moved, others = {}, movers
        for outcome, count in moved.items():
            outcomes[outcome] = outcomes.get(outcome, 0) + count
        later = [*others, *later]
    return apply_records(later, origin=origin, actor=actor, outcomes=outcomes)


def _update_movers(
    records: list[DirectoryRecord], *, origin: dict, actor: User | None
) -> tuple[dict[str, int], list[DirectoryRecord]]:
    """Apply the plain movers of ``records`` (in the caller's transaction); return their counts and the others."""
    found = {
        (person.source, person.directory_id): person
        for person in User.objects.select_for_update()
        .filter(source__in={r.source for r in records}, directory_id__in=[r.directory_id for r in records])
        .order_by("pk")
    }
    pairs = [(found.get((r.source, r.directory_id)), r) for r in records]
    renamed = [r.institution_id for person, r in pairs if person is not None and person.username != r.institution_id]
    # A new institution ID held here whatever its case (apply_record's rule, ``_holder``), or taken by two of these
    # records in two cases, goes one by one: apply_record tells which is a conflict. Renames are rare: most batches
    # ask nothing.
    twice = Counter(name.upper() for name in renamed)
    held = {name for name, count in twice.items() if count > 1}
    for start in range(0, len(renamed), 100):  # SQLite refuses an expression tree of a thousand ORs
        lookups = Q()
        for name in renamed[start : start + 100]:
            lookups |= Q(username__iexact=name)
        held |= {name.upper() for name in User.objects.filter(lookups).values_list("username", flat=True)}
    plain: list[tuple[User, DirectoryRecord]] = []
    others: list[DirectoryRecord] = []
    for person, record in pairs:
        if (
            person is None
            or not person.is_active
            or (person.username != record.institution_id and record.institution_id.upper() in held)
        ):
            others.append(record)
        else:
            plain.append((person, record))
    changes = [(person, record, _changes(person, record)) for person, record in plain]
    written = [(person, change) for person, _, change in changes if change]
    _write_movers(written)
    audit.record_many(_updated_event(person, change, origin=origin, actor=actor, ip=None) for person, change in written)
    audit.record_many(
        _email_changed(person, change, origin=origin, actor=actor, ip=None)
        for person, change in written
        if "email" in change
    )
    counts: dict[str, int] = {}
    for person, record, change in changes:
        access = _apply_access(person, record, origin=origin, actor=actor, ip=None)
        stamped = _stamp_changed(person, record) and apply_password_change(
            person, stamp=record.password_changed, origin=origin, actor=actor, ip=None
        )
        outcome = UPDATED if change or access or stamped else UNCHANGED
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts, others


def _write_movers(written: list[tuple[User, dict[str, tuple[Any, Any]]]]) -> None:
    """Write the movers' new values (each person's columns ``_changes`` may change, changed or not: the row is
    locked, so an unchanged column is written as it is). PostgreSQL: one ``UPDATE ... FROM unnest(...)`` with one
    array per column, through :func:`identity.sql.execute`; ``bulk_update``'s ``CASE`` per column and person costs
    far more (its SQL grows with people times columns). Elsewhere ``bulk_update``."""
    if not written:
        return
    for person, change in written:
        for name, (_, new) in change.items():
            setattr(person, name, new)
    if connections[DEFAULT_DB_ALIAS].vendor != "postgresql":
        User.objects.bulk_update([person for person, _ in written], list(MOVER_FIELDS))
        return
    params: dict[str, list] = {"pk": [person.pk for person, _ in written]}
    for name in MOVER_FIELDS:
        params[name] = [getattr(person, name) for person, _ in written]
    table = User._meta.db_table
    columns = ", ".join(f"unnest(%({name})s::text[]) AS {name}" for name in MOVER_FIELDS)
    assignments = ", ".join(f"{name} = m.{name}" for name in MOVER_FIELDS)
    sql.execute(
        f"UPDATE {table} u SET {assignments} "  # noqa: S608 (our table and columns)
        f"FROM (SELECT unnest(%(pk)s::bigint[]) AS pk, {columns}) m WHERE u.{User._meta.pk.column} = m.pk",
        params,
    )


class _Ref(NamedTuple):
    """A person written in bulk, as the audit log names its subject: by primary key."""

    pk: int


def _joiner_fields(record: DirectoryRecord) -> dict[str, str]:
    """A joiner's own columns (the rest take the model's defaults); every one of them a text column."""
    return {
        "username": record.institution_id,
        "first_name": record.first_name,
        "last_name": record.last_name,
        "email": record.email,
        "department": record.department,
        "source": record.source,
        "directory_id": record.directory_id,
        "directory_dn": record.dn,
        MOBILE_FIELD: mobile_of(record),
        EXTERNAL_ID_FIELD: record.external_id,
        # The directory checks their password (DIR-01); nothing here ever will. Django's unusable password (its
        # prefix and a random suffix), with the suffix from os.urandom in one call: set_unusable_password draws it a
        # character at a time, a fifth of the cost of a joiner.
        "password": UNUSABLE_PASSWORD_PREFIX + secrets.token_urlsafe(30)[:UNUSABLE_PASSWORD_SUFFIX_LENGTH],
        # First sight of the stamp: kept, nothing ended (the joiner has no session yet).
        PASSWORD_STAMP_FIELD: record.password_changed,
    }


def _insert_people(rows: list[dict[str, str]]) -> list[int]:
    """Insert the joiners ``rows`` (from :func:`_joiner_fields`) and return their primary keys, in order.

    On PostgreSQL: their keys drawn from the table's sequence in one query, the rows written with one ``COPY``,
    every other column the model's default (from one unsaved person, as ``bulk_create`` would send it). Building a
    model instance and preparing each of its fields cost more than everything else a joiner costs (bench/README.md).
    Elsewhere ``bulk_create``.
    """
    if not rows:
        return []
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        return [person.pk for person in User.objects.bulk_create([User(**row) for row in rows])]
    fields = [f for f in User._meta.concrete_fields if not f.primary_key]
    defaults = User()
    template = [f.get_db_prep_save(getattr(defaults, f.attname), db) for f in fields]
    own = [(index, f.attname) for index, f in enumerate(fields) if f.attname in rows[0]]
    table, columns = User._meta.db_table, ", ".join(str(f.column) for f in [User._meta.pk, *fields])
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [table, User._meta.pk.column, len(rows)],
        )
        pks = [pk for (pk,) in cursor.fetchall()]
        # The raw cursor's COPY raises psycopg's errors: wrapped, a unique violation is Django's IntegrityError.
        with db.wrap_database_errors, cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for pk, row in zip(pks, rows, strict=True):
                values = list(template)
                for index, name in own:
                    values[index] = row[name]
                copy.write_row([pk, *values])
    return pks


def _new_person(record: DirectoryRecord) -> User:
    return User(**_joiner_fields(record))


def _create(record: DirectoryRecord, *, origin: dict, actor: User | None, ip: str | None) -> User:
    person = _new_person(record)
    person.save()
    return _after_create(person, record, origin=origin, actor=actor, ip=ip)


def _created_event(
    subject: "User | _Ref", fields: dict, *, origin: dict, actor: User | None, ip: str | None
) -> tuple[str, dict]:
    """The ``directory.person_created`` event of ``subject`` (a person, or a :class:`_Ref`) with these ``fields``."""
    values = {name: _audited(name, fields[name]) for name in (*OWNED_FIELDS, MOBILE_FIELD)}
    if fields[EXTERNAL_ID_FIELD]:
        values[EXTERNAL_ID_FIELD] = fields[EXTERNAL_ID_FIELD]
    details = {**origin, "values": values}
    return "directory.person_created", {"actor": actor, "subject": subject, "ip": ip, "details": details}


def _after_create_needed(record: DirectoryRecord) -> bool:
    return bool(settings.DIRECTORY_WELCOME_EMAIL or record.vpn_access or record.roles)


def _after_create(
    person: User, record: DirectoryRecord, *, origin: dict, actor: User | None, ip: str | None, audited: bool = False
) -> User:
    """A joiner's audit event (unless ``audited`` already, in bulk), roles, VPN access and welcome email."""
    if not audited:
        fields = {name: getattr(person, name) for name in (*OWNED_FIELDS, MOBILE_FIELD, EXTERNAL_ID_FIELD)}
        action, event = _created_event(person, fields, origin=origin, actor=actor, ip=ip)
        audit.record(action, **event)
    _apply_roles(person, record.roles, origin=origin, actor=actor, ip=ip)
    _apply_vpn_access(person, record.vpn_access, origin=origin, actor=actor, ip=ip)
    if settings.DIRECTORY_WELCOME_EMAIL:
        hooks.run("person_joined", person)
    return person


# The person's columns a mover's record may change (``_changes``): every one a text column.
MOVER_FIELDS = (*OWNED_FIELDS, MOBILE_FIELD, EXTERNAL_ID_FIELD, "username", "directory_dn")


def _changes(person: User, record: DirectoryRecord) -> dict[str, tuple[Any, Any]]:
    """What ``record`` changes of ``person``'s own columns (owned fields, mobile number, external ID, institution ID,
    DN): ``{name: (old, new)}``. The one rule for both paths (:func:`apply_record`, :func:`update_people`). The LDAP
    sync asks the same question of a whole directory in one statement (``sync._Staging.compare``): a field added
    here is added there."""
    wanted = {name: getattr(record, name) for name in OWNED_FIELDS}
    wanted[MOBILE_FIELD] = mobile_of(record)
    wanted[EXTERNAL_ID_FIELD] = record.external_id
    wanted["username"] = record.institution_id
    if record.dn:
        wanted["directory_dn"] = record.dn
    return {name: (getattr(person, name), new) for name, new in wanted.items() if getattr(person, name) != new}


def _updated_event(
    person: User, changes: dict[str, tuple[Any, Any]], *, origin: dict, actor: User | None, ip: str | None
) -> tuple[str, dict]:
    """The ``directory.person_updated`` event of these ``changes``, old and new values (a mobile number masked)."""
    details = {
        **origin,
        "changes": {
            name: {"from": _audited(name, old), "to": _audited(name, new)} for name, (old, new) in changes.items()
        },
    }
    return "directory.person_updated", {"actor": actor, "subject": person, "ip": ip, "details": details}


def _email_changed(
    person: User, changes: dict[str, tuple[Any, Any]], *, origin: dict, actor: User | None, ip: str | None
) -> tuple[str, dict]:
    """Run the ``email_changed`` hook (DIR-06: both addresses told, links sent to the old one voided) and return the
    ``person.email_changed`` event to append, named as the desk's change names it: a recovery link to a new
    address then needs a second agent (AC-04)."""
    old, new = changes["email"]
    told = hooks.run("email_changed", person, old=old, new=new)
    details = {**origin, "from": old, "to": new, **told}
    return "person.email_changed", {"actor": actor, "subject": person, "ip": ip, "details": details}


def _apply_changes(person: User, record: DirectoryRecord, *, origin: dict, actor: User | None, ip: str | None) -> bool:
    """The mover's part, for one person: :func:`_changes` written and audited, the email change's hook, then roles
    and VPN access (:func:`_apply_access`). Returns whether anything changed."""
    changes = _changes(person, record)
    if changes:
        for name, (_, new) in changes.items():
            setattr(person, name, new)
        person.save(update_fields=list(changes))
        action, event = _updated_event(person, changes, origin=origin, actor=actor, ip=ip)
        audit.record(action, **event)
    if "email" in changes:
        action, event = _email_changed(person, changes, origin=origin, actor=actor, ip=ip)
        audit.record(action, **event)
    access = _apply_access(person, record, origin=origin, actor=actor, ip=ip)
    stamped = _stamp_changed(person, record) and apply_password_change(
        person, stamp=record.password_changed, origin=origin, actor=actor, ip=ip
    )
    return bool(changes or access or stamped)


def _stamp_changed(person: User, record: DirectoryRecord) -> bool:
    """Whether ``record`` brings a password-changed stamp ``person`` has not stored (a cheap look before
    :func:`apply_password_change`, which reads the person again under a lock)."""
    return bool(record.password_changed) and person.directory_password_changed != record.password_changed


def _apply_access(person: User, record: DirectoryRecord, *, origin: dict, actor: User | None, ip: str | None) -> bool:
    """Roles and VPN access as ``record`` gives them. A disabled record applies neither: the deactivation that
    follows revokes VPN access (approving it first would only say so twice), and the person, inactive, uses no
    role; their roles are put in line when they return. ``sync._Staging.compare`` holds the same rule."""
    if not record.active:
        return False
    roles = _apply_roles(person, record.roles, origin=origin, actor=actor, ip=ip)
    vpn = _apply_vpn_access(person, record.vpn_access, origin=origin, actor=actor, ip=ip)
    return roles or vpn


def apply_group_change(
    person: User,
    *,
    roles: frozenset[str] | None = None,
    vpn_member: bool | None = None,
    origin: dict,
    actor: User | None = None,
    ip: str | None = None,
) -> bool:
    """A cloud directory's group change for one person (SCIM): the roles they should hold and whether they are in
    the VPN group (None: not this change's). Applied whether or not the person is active, so that nothing a client
    asks of a deactivated person is lost (a client sends a membership once, never again when it reactivates them).

    Roles are granted and removed as :func:`apply_record` does (audited, DIR-04); an inactive person uses none until
    reactivated. VPN group membership is kept on the person (``scim_vpn_member``, and ``scim_vpn_by_group``: from
    the first change on, the group decides their VPN access); while they are active, VPN access
    is approved or revoked to follow it (``vpn_access.*``). A membership change that changes no access (the person
    is deactivated, or had that access already) is audited ``directory.vpn_group_joined`` / ``_left``;
    :func:`reactivate_person` gives a member their VPN access back. Returns whether anything changed.
    """
    with transaction.atomic():
        person = _lock(person)
        changed = _apply_roles(person, roles, origin=origin, actor=actor, ip=ip)
        if vpn_member is None or person.scim_vpn_member == vpn_member:
            return changed
        person.scim_vpn_member, person.scim_vpn_by_group = vpn_member, True
        person.save(update_fields=["scim_vpn_member", "scim_vpn_by_group"])
        if not (person.is_active and _apply_vpn_access(person, vpn_member, origin=origin, actor=actor, ip=ip)):
            action = "directory.vpn_group_joined" if vpn_member else "directory.vpn_group_left"
            audit.record(action, actor=actor, subject=person, ip=ip, details=dict(origin))
    return True


def directory_roles() -> frozenset[str]:
    """The roles a directory may grant: DIRECTORY_ROLES, and never anything but the staff roles (DIR-04)."""
    return frozenset(settings.DIRECTORY_ROLES) & frozenset(STAFF_GROUPS)


def _apply_roles(
    person: User, roles: frozenset[str] | None, *, origin: dict, actor: User | None, ip: str | None
) -> bool:
    """Grant and remove the allow-listed roles so the person has exactly those of ``roles`` (None: not managed).

    Each grant and removal is audited (DIR-04). A role outside the allow-list is never granted, and a group the
    directory does not manage is left alone. ``is_staff`` (the admin's door, which these roles need) follows:
    set with a role, cleared when the last staff role goes, unless the account is a superuser's.
    """
    if roles is None:
        return False
    allowed = directory_roles()
    held = set(person.groups.filter(name__in=allowed).values_list("name", flat=True))
    grant, remove = (set(roles) & allowed) - held, held - set(roles)
    refused = sorted(set(roles) - allowed)
    for name in sorted(grant):
        person.groups.add(Group.objects.get(name=name))
        audit.record("directory.role_granted", actor=actor, subject=person, ip=ip, details={**origin, "role": name})
    for name in sorted(remove):
        person.groups.remove(Group.objects.get(name=name))
        audit.record("directory.role_removed", actor=actor, subject=person, ip=ip, details={**origin, "role": name})
    if refused:
        audit.record("directory.role_refused", actor=actor, subject=person, ip=ip, details={**origin, "roles": refused})
    staff = person.is_superuser or person.groups.filter(name__in=STAFF_GROUPS).exists()
    if staff != person.is_staff:
        person.is_staff = staff
        person.save(update_fields=["is_staff"])
    return bool(grant or remove)


def _apply_vpn_access(
    person: User, vpn_access: bool | None, *, origin: dict, actor: User | None, ip: str | None
) -> bool:
    """Approve (True) or revoke (False) VPN access through the audited VPN services; None: not managed."""
    if vpn_access is None:
        return False
    details = {**origin, **({"by": actor.pk} if actor is not None else {})}
    current = User.objects.values_list("vpn_access", flat=True).get(pk=person.pk)
    if vpn_access and current != User.VpnAccess.APPROVED:
        identity_services.approve_vpn_access(person, actor=None, reason=VPN_GROUP_JOINED, ip=ip, details=details)
        return True
    if vpn_access is False and current == User.VpnAccess.APPROVED:
        identity_services.revoke_vpn_access(person, actor=None, reason=VPN_GROUP_LEFT, ip=ip, details=details)
        return True
    return False


def deactivate_person(
    user: User, *, reason: str, origin: dict, actor: User | None = None, ip: str | None = None
) -> bool:
    """The one leaver service (DIR-02): the account stops working everywhere at once; nothing is deleted.

    ``is_active`` False and ``deactivated_at`` set (web sign-in, the Auth API and RADIUS all refuse an inactive
    person), every session ended in the session store, pending links and bypass codes voided (the
    ``person_deactivated`` hook), VPN access revoked; devices stay for DIRECTORY_RETAIN_DAYS. Audits
    ``directory.person_deactivated`` with ``reason``, ``origin`` and what was ended. Returns False (and changes
    nothing) for someone already deactivated.
    """
    with transaction.atomic():
        user = _lock(user)
        if not user.is_active and user.deactivated_at is not None:
            return False
        user.is_active = False
        user.deactivated_at = timezone.now()
        user.save(update_fields=["is_active", "deactivated_at"])
        ended: dict[str, object] = {"sessions_ended": open_sessions.end_sessions(user)}
        ended.update(hooks.run("person_deactivated", user))
        if user.vpn_access in (User.VpnAccess.APPROVED, User.VpnAccess.REQUESTED):
            ended["vpn_access_was"] = user.vpn_access
            identity_services.revoke_vpn_access(
                user, actor=None, reason=f"deactivated: {reason}", ip=ip, details=origin
            )
        audit.record(
            "directory.person_deactivated",
            actor=actor,
            subject=user,
            ip=ip,
            details={**origin, "reason": reason, **ended},
        )
    return True


def apply_password_change(
    user: User, *, stamp: str, origin: dict, actor: User | None = None, ip: str | None = None
) -> bool:
    """The directory's password-changed stamp for ``user`` (LDAP_ATTRIBUTES' ``password_changed``): a stamp other
    than the one stored means the password was changed or reset in the directory, so every session of the person
    ends, in the session store, as a leaver's do (DIR-02's ``open_sessions.end_sessions``): a session taken before
    the change does not outlive it. Django's own session hash cannot tell: it covers the local password, which a
    directory person never has.

    Stores ``stamp``. The first stamp read for a person (none stored yet) is only stored, and so is anything for
    an empty ``stamp`` (the directory said nothing): both change nothing else. Audits
    ``directory.password_changed`` with ``origin`` and how many sessions ended. Returns whether sessions were ended
    (True also when the person had none open).
    """
    if not stamp:
        return False
    with transaction.atomic():
        user = _lock(user)
        stored = user.directory_password_changed
        if stored == stamp:
            return False
        user.directory_password_changed = stamp
        user.save(update_fields=[PASSWORD_STAMP_FIELD])
        if not stored:
            return False
        ended = open_sessions.end_sessions(user)
        audit.record(
            "directory.password_changed",
            actor=actor,
            subject=user,
            ip=ip,
            details={**origin, "sessions_ended": ended},
        )
    return True


def reactivate_person(user: User, *, origin: dict, actor: User | None = None, ip: str | None = None) -> bool:
    """Undo a deactivation as far as it can be undone: the account works again, with the devices still kept.

    Sessions, voided links and bypass codes stay ended; VPN access comes back only when the directory says so:
    ``vpn_access`` True in the record :func:`apply_record` applies (the LDAP sync's VPN group), or the person is in
    a SCIM client's VPN group (``scim_vpn_member``, :func:`apply_group_change`), approved here. Audits
    ``directory.person_reactivated``. Returns False (and changes nothing) for someone active.
    """
    with transaction.atomic():
        user = _lock(user)
        if user.is_active:
            return False
        deactivated_at, user.is_active, user.deactivated_at = user.deactivated_at, True, None
        user.save(update_fields=["is_active", "deactivated_at"])
        back = hooks.run("person_reactivated", user)
        audit.record(
            "directory.person_reactivated",
            actor=actor,
            subject=user,
            ip=ip,
            details={**origin, "deactivated_at": deactivated_at and deactivated_at.isoformat(), **back},
        )
        if user.scim_vpn_member:
            _apply_vpn_access(user, True, origin=origin, actor=actor, ip=ip)
    return True


def retire_devices_of_leavers(*, now: datetime | None = None) -> int:
    """Retire the devices of people deactivated more than DIRECTORY_RETAIN_DAYS ago; return how many.

    ``devices`` does it (the ``retire_devices`` hook), each person in a transaction of their own that locks them
    and reads them through this rule again, so a person reactivated meanwhile keeps their devices; each retirement
    is audited. Safe to run again: retired devices are not retired twice, and a day with nothing to retire costs
    one query however many people have left over the years.
    """
    cutoff = (now or timezone.now()) - timedelta(days=settings.DIRECTORY_RETAIN_DAYS)
    leavers = User.objects.filter(is_active=False, deactivated_at__lte=cutoff)
    return hooks.run("retire_devices", leavers, reason="directory_retention").get("devices_retired", 0)


def _entry_to_link(record: DirectoryRecord) -> DirectoryRecord:
    """``record`` checked against the LDAP directory, when one is configured (``LDAP_SERVER_URIS``): the entry with
    its institution ID must have its stable ID (compared as the password check compares them, whatever the case of
    a GUID), and its own spelling of that ID and its DN are kept, as the sync and the password check read them. A
    mistyped ID would otherwise refuse every password and have the next sync deactivate the person. Raises
    ``ValidationError``. A SCIM entry's ID is this site's own: nothing to read."""
    if record.source != User.Source.LDAP or not settings.LDAP_SERVER_URIS:
        return record
    try:
        entry = LDAPReader().record_for(record.institution_id)
    except DirectoryReadError as error:
        raise ValidationError(f"The directory could not be read ({error}). Nothing was linked.") from error
    if entry is None:
        raise ValidationError(
            f"The directory has no entry with the institution ID {record.institution_id!r} under the synced bases "
            "and groups. Nothing was linked."
        )
    if entry.directory_id.lower() != record.directory_id.strip().lower():
        raise ValidationError(
            f"The directory's entry for {record.institution_id!r} has the stable ID {entry.directory_id!r}, not "
            f"{record.directory_id!r}. Nothing was linked: check the ID and try again."
        )
    return replace(record, directory_id=entry.directory_id, dn=entry.dn)


def link_local_account(user: User, record: DirectoryRecord, *, actor: User) -> User:
    """Make the local account ``user`` the person of the directory entry ``record`` (same institution ID).

    Only a superuser's explicit decision, never a sync's (those raise :class:`DirectoryConflict`). With an LDAP
    directory configured, ``record``'s stable ID must be the one the directory's entry has (its DN is read from
    there too). From then on the directory owns the person's details and checks their password: the local one
    stops working (DIR-01). A superuser's own break-glass account stays local. Audits ``directory.account_linked``,
    then applies ``record``. Raises ``ValidationError`` for anything else, and changes nothing then.
    """
    _check_record(record)
    if actor is None or not actor.is_superuser:
        raise ValidationError("Only a superuser links a local account to the directory.")
    record = _entry_to_link(record)
    with transaction.atomic():
        user = _lock(user)
        if user.from_directory:
            raise ValidationError(f"{user.username} already comes from the directory.")
        if user.is_superuser:
            raise ValidationError("A superuser account stays a local (break-glass) account; it is not linked.")
        if user.username != record.institution_id:
            raise ValidationError(
                f"The directory entry's institution ID is {record.institution_id!r}, not {user.username!r}."
            )
        taken = User.objects.filter(source=record.source, directory_id=record.directory_id).first()
        if taken is not None:
            raise ValidationError(f"That directory entry is already linked to {taken.username}.")
        user.source, user.directory_id, user.directory_dn = record.source, record.directory_id, record.dn
        user.set_unusable_password()
        user.save(update_fields=["source", "directory_id", "directory_dn", "password"])
        audit.record(
            "directory.account_linked",
            actor=actor,
            subject=user,
            details={"source": record.source, "directory_id": record.directory_id, "dn": record.dn},
        )
        apply_record(record, origin={"linked_by": actor.pk}, actor=actor)
    user.refresh_from_db()
    return user
