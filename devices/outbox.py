"""The transactional outbox: queue a message with the state change, send it from a task.

Writers call :func:`queue_email` or :func:`queue_phone_message` inside their
own transaction; the send task is dispatched on commit (REL-01). A broker
that is down only leaves the row queued: the request still commits, and the
periodic :func:`sweep` dispatches it later (REL-03, REL-06).

:func:`deliver_message` claims a row (``queued -> sending``, locked with ``FOR UPDATE SKIP LOCKED`` as
``select_for_update(skip_locked=True)`` does, in the claiming UPDATE itself), so running it twice sends once
(REL-02). The claim and the outcome are each one statement that does not wait for the disk: after a crash of
PostgreSQL itself a message may be sent twice, never lost (see ``_QUICK_COMMIT``). Transient provider errors are retried
with exponential backoff and jitter, never past the message's expiry and
never with a new code; permanent errors fail at once (REL-04). A body that
holds a code or link is encrypted, and erased once the message is sent,
failed or expired.

A request that went out and got no answer (a read timeout) is an unknown outcome, not a failure: the row
remembers it, and the next attempt first asks the provider whether the message went out, and sends only if it
did not. An email holding a link is not sent again after such a loss (SMTP cannot be asked). Each channel has a
queue of its own (``OUTBOX_QUEUES``), so a stalled mail server never holds up texts or calls, and the sweep has
its own too. The sweep dispatches a row again only when its last dispatch is older than the grace period, which
doubles with every re-dispatch, so a backlog waiting for a worker that is down is not queued again and again.

At least once, not exactly once: a worker killed after the provider accepted a message and before the row says
so sends it again after the lease (``OUTBOX_SENDING_LEASE_SECONDS``).
"""

import contextlib
import logging
import random
import smtplib
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

import psycopg
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction
from django.db.models import F, Q
from django.utils import timezone

from . import crypto
from .gateways import PermanentGatewayError, TransientGatewayError, UnknownOutcomeError, get_gateway
from .models import OutboundMessage

logger = logging.getLogger(__name__)
Status = OutboundMessage.Status
# The Celery task that sends one message (``devices.tasks.send_outbound_message``), set when the app is ready:
# the task module imports this one, so this one cannot import it.
send_task = None


def dispatch(message_id: int, channel: str) -> bool:
    """Hand the message to its channel's queue. False (and the row marked) when the broker is unreachable."""
    try:
        send_task.apply_async((message_id,), queue=settings.OUTBOX_QUEUES[channel])
    except Exception as exc:  # any broker failure: the sweep sends it later
        logger.warning("could not dispatch outbound message %s (%s); left queued", message_id, type(exc).__name__)
        OutboundMessage.objects.filter(pk=message_id, status=Status.QUEUED).update(dispatch_failed_at=timezone.now())
        return False
    return True


def _queue(**fields) -> OutboundMessage:
    body = fields.pop("body")
    message = OutboundMessage.objects.create(
        encrypted_body=crypto.encrypt(body.encode()), last_dispatched_at=timezone.now(), **fields
    )
    transaction.on_commit(lambda: dispatch(message.pk, message.channel))
    return message


def queue_email(
    *, user, to: str, subject: str, body: str, template: str, holds_secret: bool, expires_at=None
) -> OutboundMessage:
    """Write an email to the outbox; it is sent after the caller's transaction commits."""
    return _queue(
        user=user,
        channel=OutboundMessage.Channel.EMAIL,
        recipient=to,
        template=template,
        subject=subject,
        body=body,
        holds_secret=holds_secret,
        expires_at=expires_at,
    )


def queue_phone_message(*, user, channel: str, number: str, body: str, template: str, expires_at) -> OutboundMessage:
    """Write a text or a voice call to the outbox. Phone messages always carry a code: encrypted, then erased."""
    return _queue(
        user=user,
        channel=channel,
        recipient=number,
        template=template,
        body=body,
        holds_secret=True,
        expires_at=expires_at,
    )


def _claimable(now):
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
# waits for the disk as always. Inside a caller's transaction the caller's durability stands.
_QUICK_COMMIT = "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS quick_commit"

# What sending needs from a claimed row; the instance leaves the other columns deferred.
_SENDING_NEEDS = {
    *("id", "channel", "recipient", "subject", "encrypted_body", "holds_secret", "attempts", "expires_at"),
    "unknown_outcome_at",
}


@cache
def _claimed_fields() -> tuple[str, ...]:
    # In the model's own order: from_db() pairs values with fields by that order, not by name.
    return tuple(field.attname for field in OutboundMessage._meta.concrete_fields if field.name in _SENDING_NEEDS)


def _update_sql(assignments: str, where: str, quick: bool, returning: tuple[str, ...] = ()) -> str:
    # Only our own table and column names go into the text; every value is a parameter.
    columns = [_quoted(OutboundMessage._meta.get_field(name).column) for name in returning]
    return " ".join(
        [
            f"UPDATE {_quoted(OutboundMessage._meta.db_table)} SET {assignments}",  # noqa: S608
            _QUICK_COMMIT if quick else "",
            f"WHERE {where}",
            f"RETURNING {', '.join(columns)}" if columns else "",
        ]
    )


@cache
def _claim_sql(quick: bool) -> str:
    # The rows _claimable() selects, less the expired ones, written out once: compiling that filter for every
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
    fields = [OutboundMessage._meta.get_field(name) for name in names]
    assignments = ", ".join(f"{_quoted(field.column)} = %({field.name})s" for field in fields)
    if not fenced:
        return _update_sql(assignments, "id = %(id)s", quick)
    # Only while the row is still this claim's: a sender slower than the lease must not overwrite the outcome
    # of the worker that took the row over.
    where = "id = %(id)s AND status = %(sending)s AND claimed_at = %(claimed_at)s"
    return _update_sql(assignments, where, quick, returning=("id",))


def _quick(db) -> bool:
    return db.vendor == "postgresql" and not db.in_atomic_block


def _execute(db, sql: str, params: dict, *, fetch: bool):
    if db.vendor != "postgresql":
        with db.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone() if fetch else None
    db.validate_no_broken_transaction()  # what Django's own cursor checks first
    db.ensure_connection()
    try:
        return _execute_prepared(db, sql, params, fetch)
    except DatabaseError as exc:
        # Instead of a "SELECT 1" before every message (CONN_HEALTH_CHECKS, REL-08), a connection the server
        # dropped (a restart, an idle timeout) is found by the statement itself. That, or a prepared statement
        # the server no longer accepts (a column changed under it: "cached plan must not change result type"),
        # is mended by a new connection: send the statement once more there. Both statements are safe to repeat:
        # a failed one changed nothing, unless the connection broke after the server ran it; then a claim finds
        # the row no longer claimable and leaves it to the lease and the sweep, and an outcome finds the row no
        # longer its claim's (it already holds that outcome) and changes nothing. Inside a transaction the
        # caller decides.
        if db.in_atomic_block:
            raise
        logger.info("the outbox's statement failed (%s); retrying on a new connection", type(exc).__name__)
        db.close()
        db.ensure_connection()
        return _execute_prepared(db, sql, params, fetch)


def _execute_prepared(db, sql: str, params: dict, fetch: bool):
    # The outbox sends the same few statements for every message: PostgreSQL parses and plans them once per
    # connection (a prepared statement) instead of once per message. Django's own cursors bind parameters on the
    # client and never prepare, so these go through a server-binding cursor on the same connection.
    with db.wrap_database_errors, psycopg.Cursor(db.connection) as cursor:
        cursor.execute(sql, params, prepare=settings.OUTBOX_PREPARED_STATEMENTS)
        return cursor.fetchone() if fetch else None


@cache
def _claimed_converters(alias: str) -> list:
    """Per returned column, what a queryset would run on its value (none on PostgreSQL; text to datetime on SQLite)."""
    db = connections[alias]
    table = OutboundMessage._meta.db_table
    converters = []
    for name in _claimed_fields():
        field = OutboundMessage._meta.get_field(name)
        column = field.get_col(table)
        converters.append(
            [(convert, column) for convert in db.ops.get_db_converters(column) + field.get_db_converters(db)]
        )
    return converters


@cache
def _quoted(name: str) -> str:
    return connection.ops.quote_name(name)


def _finish(message: OutboundMessage, status: str, *, claimed_at=None, **fields) -> bool:
    """Write a message's outcome; with ``claimed_at``, only if that claim still holds the row (False if not)."""
    message.status = status
    for name, value in fields.items():
        setattr(message, name, value)
    if message.holds_secret and status in (Status.SENT, Status.FAILED, Status.EXPIRED):
        message.encrypted_body = ""
    db = connections[DEFAULT_DB_ALIAS]
    names = ("status", "encrypted_body", *fields)
    params = {"id": message.pk}
    for name in names:
        field = OutboundMessage._meta.get_field(name)
        params[name] = field.get_db_prep_save(getattr(message, field.attname), db)
    fenced = claimed_at is not None
    if fenced:
        params |= {"sending": Status.SENDING.value, "claimed_at": db.ops.adapt_datetimefield_value(claimed_at)}
    row = _execute(db, _outcome_sql(names, _quick(db), fenced), params, fetch=fenced)
    if fenced and row is None:
        logger.warning("outbound message %s was taken over after its lease; this outcome is not recorded", message.pk)
        return False
    return True


def _claim(message_id: int) -> OutboundMessage | None:
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
    row = _execute(db, _claim_sql(_quick(db)), params, fetch=True)
    if row is None:
        _expire_if_due(message_id, now)
        return None
    values = list(row)
    for position, converters in enumerate(_claimed_converters(db.alias)):
        for convert, column in converters:
            values[position] = convert(values[position], column, db)
    message = OutboundMessage.from_db(db.alias, _claimed_fields(), values)
    message.status, message.claimed_at = Status.SENDING, now
    return message


def _expire_if_due(message_id: int, now) -> None:
    with transaction.atomic():
        message = (
            OutboundMessage.objects.select_for_update(skip_locked=True)
            .filter(_claimable(now), pk=message_id, expires_at__lte=now)
            .first()
        )
        if message is not None:
            _finish(message, Status.EXPIRED)


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with full jitter: uniform in [base, min(max, base * 2^(attempt-1))]."""
    base = settings.OUTBOX_BACKOFF_BASE_SECONDS
    ceiling = min(settings.OUTBOX_BACKOFF_MAX_SECONDS, base * 2 ** max(attempt - 1, 0))
    return random.uniform(base, max(base, ceiling))  # noqa: S311  (jitter, not a secret)


def _send_email(message: OutboundMessage, body: str) -> None:
    # Every wait on the mail server is bounded by EMAIL_TIMEOUT (Django hands it to smtplib as the socket timeout).
    # smtplib's errors are OSErrors too: the order of the clauses matters.
    mail = get_connection()
    try:
        mail.open()  # connect, greet, log in: nothing is sent yet, so any failure here is safe to retry
    except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError) as exc:  # no greeting ("timed out")
        raise TransientGatewayError(f"{type(exc).__name__}: {exc}") from exc
    except smtplib.SMTPException as exc:  # refused log-in, no TLS, ...
        raise PermanentGatewayError(type(exc).__name__) from exc
    except OSError as exc:  # refused, unreachable, timed out
        raise TransientGatewayError(f"{type(exc).__name__}: {exc}") from exc
    try:
        EmailMessage(subject=message.subject, body=body, to=[message.recipient], connection=mail).send()
    except smtplib.SMTPRecipientsRefused as exc:
        raise PermanentGatewayError(type(exc).__name__) from exc
    except smtplib.SMTPResponseException as exc:  # the server answered: it did not take the message
        if 400 <= exc.smtp_code < 500:
            raise TransientGatewayError(f"mail server answered {exc.smtp_code}") from exc
        raise PermanentGatewayError(f"mail server answered {exc.smtp_code}") from exc
    except smtplib.SMTPServerDisconnected as exc:
        raise UnknownOutcomeError(type(exc).__name__) from exc
    except smtplib.SMTPException as exc:
        raise PermanentGatewayError(type(exc).__name__) from exc
    except OSError as exc:  # no answer after the message went out: it may have been taken
        raise UnknownOutcomeError(type(exc).__name__) from exc
    finally:
        with contextlib.suppress(OSError):  # a QUIT that fails says nothing about the message
            mail.close()


def _send(message: OutboundMessage) -> str:
    body = crypto.decrypt(message.encrypted_body).decode()
    if message.channel == OutboundMessage.Channel.EMAIL:
        _send_email(message, body)
        return ""
    gateway = get_gateway()
    if message.channel == OutboundMessage.Channel.SMS:
        return gateway.send_sms(message.recipient, body)
    return gateway.place_call(message.recipient, body)


@dataclass(frozen=True)
class Delivery:
    message: OutboundMessage | None
    retry_in: float | None = None


def _retry_or_fail(message: OutboundMessage, claim, error: str, **fields) -> Delivery:
    """After a transient error or a lost answer: queue the next try after a backoff, or fail when out of tries/time."""
    delay = backoff_seconds(message.attempts)
    retry_at = timezone.now() + timedelta(seconds=delay)
    too_late = message.expires_at is not None and retry_at >= message.expires_at
    if message.attempts >= settings.OUTBOX_MAX_ATTEMPTS or too_late:
        if _finish(message, Status.FAILED, claimed_at=claim, last_error=error[:500], **fields):
            logger.warning("outbound message %s failed after %s attempts", message.pk, message.attempts)
        return Delivery(message)
    # The task retried below is this row's dispatch: the sweep counts its grace from when it is due.
    if not _finish(
        message,
        Status.QUEUED,
        claimed_at=claim,
        last_error=error[:500],
        next_attempt_at=retry_at,
        last_dispatched_at=retry_at,
        **fields,
    ):
        return Delivery(message)  # another worker has it now, and its own retries
    return Delivery(message, retry_in=delay)


def _already_sent(message: OutboundMessage) -> str | None:
    """Whether the provider took the message on an attempt whose answer was lost: its id, or None if it did not."""
    # Allow for the clocks of the provider and this server disagreeing by up to a minute.
    since = message.unknown_outcome_at - timedelta(minutes=1)
    body = crypto.decrypt(message.encrypted_body).decode()
    return get_gateway().find_sent(message.channel, message.recipient, body, since)


def deliver_message(message_id: int) -> Delivery:
    """Send one message if it can be claimed; say whether and when to try again.

    An earlier attempt whose answer was lost is resolved first: if the provider has the message, the row is sent
    without a new request; if it cannot be asked, the next try comes after a backoff (never a blind resend).
    """
    message = _claim(message_id)
    if message is None:
        return Delivery(None)
    claim = message.claimed_at
    unknown_since = message.unknown_outcome_at
    try:
        provider_id = None
        if unknown_since is not None:
            if message.channel == OutboundMessage.Channel.EMAIL:
                raise UnknownOutcomeError("no answer from the mail server after the message went out")
            provider_id = _already_sent(message)
        if provider_id is None:
            provider_id = _send(message)
    except (UnknownOutcomeError, SoftTimeLimitExceeded) as exc:
        # Stopped by the task's time limit mid-request is the same: the request may have gone out.
        error = (
            f"outcome unknown ({type(exc).__name__}: {exc}); not sent again until the provider says it does not have it"
        )
        lost = {"unknown_outcome_at": unknown_since or claim}
        if message.channel == OutboundMessage.Channel.EMAIL and message.holds_secret:
            # SMTP cannot be asked what it took: a link is not mailed twice. The person can ask for another.
            if _finish(message, Status.FAILED, claimed_at=claim, last_error=error[:500], **lost):
                logger.warning("outbound message %s: no answer from the mail server; not sent again", message.pk)
            return Delivery(message)
        if message.channel == OutboundMessage.Channel.EMAIL:
            lost = {}  # a notice without a secret may come twice rather than not at all
        return _retry_or_fail(message, claim, error, **lost)
    except TransientGatewayError as exc:
        return _retry_or_fail(message, claim, str(exc))
    except PermanentGatewayError as exc:
        if _finish(message, Status.FAILED, claimed_at=claim, last_error=str(exc)[:500]):
            logger.warning("outbound message %s refused by the provider", message.pk)
        return Delivery(message)
    resolved = {"unknown_outcome_at": None} if unknown_since is not None else {}
    _finish(
        message,
        Status.SENT,
        claimed_at=claim,
        provider_id=provider_id or "",
        sent_at=timezone.now(),
        last_error="",
        **resolved,
    )
    return Delivery(message)


def _due_for_dispatch(now):
    """Claimable rows the sweep should dispatch again, with how often it already has."""
    grace = timedelta(seconds=settings.OUTBOX_SWEEP_GRACE_SECONDS)
    candidates = (
        OutboundMessage.objects.filter(_claimable(now))
        .filter(
            Q(dispatch_failed_at__isnull=False)
            | Q(last_dispatched_at__isnull=True, created_at__lte=now - grace)
            | Q(last_dispatched_at__lte=now - grace)
        )
        .values_list("pk", "channel", "dispatch_failed_at", "last_dispatched_at", "sweep_dispatches")
    )
    due = []
    for pk, channel, failed_at, dispatched_at, redispatches in candidates:
        # Its task may still be waiting in the broker for a worker: each re-dispatch waits twice as long as the one
        # before (up to OUTBOX_SWEEP_MAX_BACKOFF_SECONDS), so an outage does not fill the queue with copies.
        wait = min(grace * 2**redispatches, timedelta(seconds=settings.OUTBOX_SWEEP_MAX_BACKOFF_SECONDS))
        if failed_at is not None or dispatched_at is None or dispatched_at <= now - wait:
            due.append((pk, channel))
    return due


def _expire_overdue(now) -> None:
    with transaction.atomic():
        for message in OutboundMessage.objects.select_for_update(skip_locked=True).filter(
            status__in=[Status.QUEUED, Status.SENDING], expires_at__lte=now
        ):
            if message.status == Status.QUEUED or message.claimed_at < now - timedelta(
                seconds=settings.OUTBOX_SENDING_LEASE_SECONDS
            ):
                _finish(message, Status.EXPIRED)


def sweep() -> list[int]:
    """Expire what is too old to send; return ids of messages due to be dispatched again (REL-03). Dispatches nothing."""
    now = timezone.now()
    _expire_overdue(now)
    return [pk for pk, _channel in _due_for_dispatch(now)]


def redispatch_stale() -> int:
    """The periodic sweep: expire what is too old, dispatch again what waited too long (REL-03). Returns how many.

    Each row dispatched is marked (when, how often) before its task is published; one the broker refuses is
    marked as such by :func:`dispatch` and tried again at the next sweep.
    """
    now = timezone.now()
    _expire_overdue(now)
    count = 0
    for pk, channel in _due_for_dispatch(now):
        OutboundMessage.objects.filter(pk=pk).update(
            last_dispatched_at=now, sweep_dispatches=F("sweep_dispatches") + 1, dispatch_failed_at=None
        )
        count += dispatch(pk, channel)
    return count
