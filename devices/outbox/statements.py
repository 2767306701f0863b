"""The outbox's bookkeeping as single SQL statements: claim a row for sending, write its outcome, expire it.

Each is one UPDATE that locks, checks and writes at once, so of two workers one gets the row (REL-02); see
``QUICK_COMMIT`` for why these statements do not wait for the disk.
"""

import logging
from datetime import timedelta
from functools import cache

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import Field, Q
from django.utils import timezone

from identity import sql

from ..models import OutboundMessage

logger = logging.getLogger(__name__)
Status = OutboundMessage.Status


def claimable(now):
    lease = timedelta(seconds=settings.OUTBOX_SENDING_LEASE_SECONDS)
    waiting = Q(status=Status.QUEUED) & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    # A worker that died mid-send leaves its row "sending"; after the lease another may take it.
    abandoned = Q(status=Status.SENDING, claimed_at__lt=now - lease)
    return waiting | abandoned


# The outbox's own bookkeeping (claimed, sent, retry later, failed, expired) is one UPDATE statement, committed
# without waiting for PostgreSQL to flush its log (synchronous_commit off for that statement's transaction only).
# Other sessions see the change at once, so a claim still shuts out a second sender, and a worker that dies loses
# nothing. Only a crash of PostgreSQL or its machine can undo the last fraction of a second of such changes: the
# row is "queued" or "sending" again, and the sweep sends it again (after the lease for "sending"). So a database
# crash may send a message twice, never zero times: the row itself was written by the caller's transaction, which
# waits for the disk. Inside a caller's transaction the caller's durability stands.
QUICK_COMMIT = "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS quick_commit"

# What sending needs from a claimed row; the instance leaves the other columns deferred.
_SENDING_NEEDS = {
    *("id", "channel", "recipient", "subject", "encrypted_body", "holds_secret", "attempts", "expires_at"),
    *("unknown_outcome_at", "bulk", "template", "user"),
}


def _field(name: str) -> Field:
    field = OutboundMessage._meta.get_field(name)
    # Every name these statements write or return is a column of the outbox's own table, never a relation to it.
    assert isinstance(field, Field)
    return field


@cache
def _claimed_fields() -> tuple[str, ...]:
    # In the model's own order: from_db() pairs values with fields by that order, not by name.
    return tuple(field.attname for field in OutboundMessage._meta.concrete_fields if field.name in _SENDING_NEEDS)


def _update_sql(assignments: str, where: str, quick: bool, returning: tuple[str, ...] = ()) -> str:
    # Only our own table and column names go into the text; every value is a parameter.
    columns = [_quoted(_field(name).column) for name in returning]
    return " ".join(
        [
            f"UPDATE {_quoted(OutboundMessage._meta.db_table)} SET {assignments}",  # noqa: S608
            QUICK_COMMIT if quick else "",
            f"WHERE {where}",
            f"RETURNING {', '.join(columns)}" if columns else "",
        ]
    )


@cache
def _claim_sql(quick: bool) -> str:
    # The rows claimable() selects, less the expired ones, written out once: compiling that filter for every
    # message would cost more than running the statement. The row is locked with FOR UPDATE SKIP LOCKED (what
    # select_for_update(skip_locked=True) writes) in a subquery of the UPDATE itself.
    skip_locked = "FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    where = f"""id = (
        SELECT id FROM {_quoted(OutboundMessage._meta.db_table)}
        WHERE id = %(id)s
          AND (expires_at IS NULL OR expires_at > %(now)s)
          AND (status = %(queued)s AND (next_attempt_at IS NULL OR next_attempt_at <= %(now)s)
               OR status = %(sending)s AND claimed_at < %(lease_start)s)
        {skip_locked}
    )"""  # noqa: S608
    assignments = "status = %(sending)s, claimed_at = %(now)s, attempts = attempts + 1"
    return _update_sql(assignments, where, quick, returning=_claimed_fields())


@cache
def _outcome_sql(names: tuple[str, ...], quick: bool, fenced: bool) -> str:
    fields = [_field(name) for name in names]
    assignments = ", ".join(f"{_quoted(field.column)} = %({field.name})s" for field in fields)
    if not fenced:
        return _update_sql(assignments, "id = %(id)s", quick)
    # Only while the row is still this claim's: a sender slower than the lease must not overwrite the outcome
    # of the worker that took the row over.
    where = "id = %(id)s AND status = %(sending)s AND claimed_at = %(claimed_at)s"
    return _update_sql(assignments, where, quick, returning=("id",))


def _quick(db) -> bool:
    return db.vendor == "postgresql" and not db.in_atomic_block


def _execute(sql_text: str, params: dict, *, fetch: bool):
    # Outside a transaction a connection the server dropped is replaced first (identity.sql's one rule, in place of
    # a "SELECT 1" before every message, REL-08); one lost silently fails the statement, and the message stays
    # queued for its retry or the sweep. Inside a transaction the caller decides.
    return sql.execute(sql_text, params, fetch="one" if fetch else None)


@cache
def _claimed_converters(alias: str) -> list:
    """Per returned column, what a queryset would run on its value (none on PostgreSQL; text to datetime on SQLite)."""
    db = connections[alias]
    table = OutboundMessage._meta.db_table
    converters = []
    for name in _claimed_fields():
        field = _field(name)
        column = field.get_col(table)
        converters.append(
            [(convert, column) for convert in db.ops.get_db_converters(column) + field.get_db_converters(db)]
        )
    return converters


@cache
def _quoted(name: str) -> str:
    return connection.ops.quote_name(name)


def finish_message(message: OutboundMessage, status: str, *, claimed_at=None, **fields) -> bool:
    """Write a message's outcome; with ``claimed_at``, only if that claim still holds the row (False if not)."""
    message.status = status
    for name, value in fields.items():
        setattr(message, name, value)
    if message.holds_secret and status in (Status.SENT, Status.FAILED, Status.EXPIRED):
        message.encrypted_body = ""
    db = connections[DEFAULT_DB_ALIAS]
    names = ("status", "encrypted_body", *fields)
    params: dict[str, object] = {"id": message.pk}
    for name in names:
        field = _field(name)
        params[name] = field.get_db_prep_save(getattr(message, field.attname), db)
    fenced = claimed_at is not None
    if fenced:
        params |= {"sending": Status.SENDING.value, "claimed_at": db.ops.adapt_datetimefield_value(claimed_at)}
    row = _execute(_outcome_sql(names, _quick(db), fenced), params, fetch=fenced)
    if fenced and row is None:
        logger.warning("outbound message %s was taken over after its lease; this outcome is not recorded", message.pk)
        return False
    return True


def claim_message(message_id: int) -> OutboundMessage | None:
    """``queued -> sending`` in one statement: lock the row if it is free and claimable, update it, return it.

    Locking, checking and updating are one statement and one transaction: of two concurrent claims one gets the
    row and the other skips it, or, coming later, no longer finds it claimable.
    """
    db = connections[DEFAULT_DB_ALIAS]  # once: every attribute of ``connection`` is a thread-local lookup
    now = timezone.now()
    at = db.ops.adapt_datetimefield_value
    params = {
        "id": message_id,
        "now": at(now),
        "lease_start": at(now - timedelta(seconds=settings.OUTBOX_SENDING_LEASE_SECONDS)),
        "queued": Status.QUEUED.value,
        "sending": Status.SENDING.value,
    }
    row = _execute(_claim_sql(_quick(db)), params, fetch=True)
    if row is None:
        expire_if_due(message_id, now)
        return None
    values = list(row)
    for position, converters in enumerate(_claimed_converters(db.alias)):
        for convert, column in converters:
            values[position] = convert(values[position], column, db)
    message = OutboundMessage.from_db(db.alias, _claimed_fields(), values)
    message.status, message.claimed_at = Status.SENDING, now
    return message


def expire_if_due(message_id: int, now) -> None:
    with transaction.atomic():
        message = (
            OutboundMessage.objects.select_for_update(skip_locked=True)
            .filter(claimable(now), pk=message_id, expires_at__lte=now)
            .first()
        )
        if message is not None:
            finish_message(message, Status.EXPIRED)
