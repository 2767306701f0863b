"""The transactional outbox: queue a message with the state change, send it from a task.

Writers call :func:`queue_email` or :func:`queue_phone_message` inside their
own transaction; the send task is dispatched on commit (REL-01). A broker
that is down only leaves the row queued: the request still commits, and the
periodic :func:`sweep` dispatches it later (REL-03, REL-06).

:func:`deliver_message` claims a row (``queued -> sending``, locked with ``FOR UPDATE SKIP LOCKED`` as
``select_for_update(skip_locked=True)`` does, in the claiming UPDATE itself), so running it twice sends once
(REL-02). The claim and the outcome are each one statement that does not wait for the disk: after a crash of
PostgreSQL itself a message may be sent twice, never lost (see ``statements.QUICK_COMMIT``). Transient provider errors are retried
with exponential backoff and jitter, never past the message's expiry and
never with a new code; permanent errors fail at once (REL-04). A body that
holds a code or link is encrypted, and erased once the message is sent,
failed or expired.

A request that went out and got no answer (a read timeout) is an unknown outcome, not a failure: the row
remembers it, and the next attempt first asks the provider whether the message went out, and sends only if it
did not. An email holding a link is not sent again after such a loss (SMTP cannot be asked). Each channel has a
queue of its own (``OUTBOX_QUEUES``), so a stalled mail server never holds up texts or calls, and the sweep has
its own too. The sweep dispatches a row again only when its last dispatch is older than the grace period and no
task of its is waiting in the broker (:mod:`.waiting`), so a backlog waiting for a worker that is down is not
queued again and again; one sweep runs at a time, and it publishes a batch over one connection.

Bulk messages (campaign reminders, :func:`queue_bulk`) travel in lanes of their own (``bulk-<channel>`` in
``OUTBOX_QUEUES``), so a sign-in code is never queued behind thousands of them, and are written a batch at a time. An
app may register a check of whether a bulk message is still wanted (:data:`unwanted`, by the template's prefix): one
that is not (the person enrolled meanwhile) is expired unsent, with the check's reason as its last error.

At least once, not exactly once: a worker killed after the provider accepted a message and before the row says
so sends it again after the lease (``OUTBOX_SENDING_LEASE_SECONDS``).

This module queues, dispatches and sweeps; :mod:`.delivery` sends one claimed message and decides on a retry;
:mod:`.statements` holds the claim and outcome statements both use.
"""

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.template.loader import render_to_string
from django.utils import timezone

from .. import crypto
from ..models import OutboundMessage
from . import delivery, waiting
from .delivery import Delivery, backoff_seconds, deliver_message
from .statements import claimable, finish_message

__all__ = [
    "Delivery",
    "backoff_seconds",
    "deliver_message",
    "dispatch",
    "dispatch_batch",
    "lane",
    "queue_bulk",
    "queue_email",
    "queue_phone_message",
    "redispatch_stale",
    "render_text",
    "sweep",
    "unwanted",
]

logger = logging.getLogger(__name__)
Status = OutboundMessage.Status
# The Celery task that sends one message (``devices.tasks.send_outbound_message``), set when the app is ready:
# the task module imports this one, so this one cannot import it.
send_task: Any = None  # a Celery task (Celery ships no types)
# "template prefix" (what comes before the ":") -> f(message) -> str | None: why a bulk message is no longer worth
# sending (recorded as its last error), or None to send it; asked when a worker has claimed it. Registered by the app
# that queues them (campaigns), read by .delivery.
unwanted = delivery.unwanted


def lane(channel: str, bulk: bool) -> str:
    """The key in ``OUTBOX_QUEUES`` of a message's queue: its channel's, or its channel's bulk lane."""
    return f"bulk-{channel}" if bulk else channel


def dispatch(message_id: int, channel: str, attempts: int = 0) -> bool:
    """Hand the message to its lane's queue (``channel`` is a key of ``OUTBOX_QUEUES``: a channel, or a bulk lane).
    False (and the row marked) when the broker is unreachable."""
    return dispatch_batch([(message_id, channel, attempts)]) == 1


def dispatch_batch(rows: list[tuple[int, str, int]]) -> int:
    """Publish a send task for each ``(id, lane, attempts)`` over one connection; return how many went out.

    The rows are marked as waiting in the broker first (:mod:`.waiting`). More than one go in kombu's publish batch:
    one round trip to Redis for the lot instead of one per message. Those the broker refuses (for a batch, all of
    it: which of its messages were written is unknown, and one written twice is sent once) are marked as refused
    (``dispatch_failed_at``) in one statement, and the sweep sends them later.
    """
    if not rows:
        return 0
    waiting.mark({pk: attempts for pk, _channel, attempts in rows})
    published = 0
    app = send_task.app
    try:
        if len(rows) > 1 and not app.conf.task_always_eager:  # eager: each runs in-process, no broker to talk to
            with app.producer_or_acquire() as producer, producer.batch():
                for pk, channel, _attempts in rows:
                    send_task.apply_async((pk,), queue=settings.OUTBOX_QUEUES[channel], producer=producer)
            published = len(rows)
        else:
            for pk, channel, _attempts in rows:
                send_task.apply_async((pk,), queue=settings.OUTBOX_QUEUES[channel])
                published += 1
    except Exception as exc:  # any broker failure: the sweep sends them later
        refused = [pk for pk, _channel, _attempts in rows[published:]]
        logger.warning("could not dispatch %s outbound message(s) (%s); left queued", len(refused), type(exc).__name__)
        waiting.unmark(refused)
        OutboundMessage.objects.filter(pk__in=refused, status=Status.QUEUED).update(dispatch_failed_at=timezone.now())
    return published


TEXT_ENGINE = "text"  # settings.TEMPLATES: the engine without autoescape


def render_text(template_name: str, context: dict) -> str:
    """A plain-text message (an email's body, a text, a call's words) from its template: nothing HTML-escaped, since
    nobody reads it as HTML ("O'Brien & Sons" stays as it is)."""
    return render_to_string(template_name, context, using=TEXT_ENGINE)


def _queue(**fields) -> OutboundMessage:
    body = fields.pop("body")
    message = OutboundMessage.objects.create(
        encrypted_body=crypto.encrypt(body.encode()), last_dispatched_at=timezone.now(), **fields
    )
    transaction.on_commit(lambda: dispatch(message.pk, lane(message.channel, message.bulk)))
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


def queue_bulk(messages: list[dict]) -> list[OutboundMessage]:
    """Write many messages without a secret (each a dict: ``user_id``, ``channel``, ``recipient``, ``template``, ``body``,
    optional ``subject``) in one INSERT, in their bulk lanes; they are dispatched over one broker connection after the
    caller's transaction commits. Returns the rows, with their ids."""
    now = timezone.now()
    rows = OutboundMessage.objects.bulk_create(
        [
            OutboundMessage(
                user_id=spec["user_id"],
                channel=spec["channel"],
                recipient=spec["recipient"],
                template=spec["template"],
                subject=spec.get("subject", ""),
                encrypted_body=crypto.encrypt(spec["body"].encode()),
                holds_secret=False,
                bulk=True,
                last_dispatched_at=now,
            )
            for spec in messages
        ]
    )
    due = [(row.pk, lane(row.channel, True), 0) for row in rows]
    transaction.on_commit(lambda: dispatch_batch(due))
    return rows


def bulk_backlog() -> int:
    """How many bulk messages are still queued or sending (one count on the status index)."""
    return OutboundMessage.objects.filter(status__in=[Status.QUEUED, Status.SENDING], bulk=True).count()


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


def _due_for_dispatch(now) -> list[tuple[int, str, int]]:
    """Claimable rows the sweep should dispatch again: waited past their grace, and no task of theirs in the broker."""
    grace = timedelta(seconds=settings.OUTBOX_SWEEP_GRACE_SECONDS)
    candidates = (
        OutboundMessage.objects.filter(claimable(now))
        .filter(
            Q(dispatch_failed_at__isnull=False)
            | Q(last_dispatched_at__isnull=True, created_at__lte=now - grace)
            | Q(last_dispatched_at__lte=now - grace)
        )
        .values_list(
            "pk", "channel", "bulk", "attempts", "dispatch_failed_at", "last_dispatched_at", "sweep_dispatches"
        )
    )
    due = []
    for pk, channel, bulk, attempts, failed_at, dispatched_at, redispatches in candidates:
        # A second guard behind the marks of .waiting (which may be lost with Redis or unreadable): each re-dispatch
        # waits twice as long as the one before (up to OUTBOX_SWEEP_MAX_BACKOFF_SECONDS).
        wait = min(grace * 2**redispatches, timedelta(seconds=settings.OUTBOX_SWEEP_MAX_BACKOFF_SECONDS))
        if failed_at is not None or dispatched_at is None or dispatched_at <= now - wait:
            due.append((pk, lane(channel, bulk), attempts))
    in_broker = waiting.still_waiting(due)
    return [row for row in due if row[0] not in in_broker]


def _expire_overdue(now) -> None:
    with transaction.atomic():
        for message in OutboundMessage.objects.select_for_update(skip_locked=True).filter(
            status__in=[Status.QUEUED, Status.SENDING], expires_at__lte=now
        ):
            if message.status == Status.QUEUED or message.claimed_at < now - timedelta(
                seconds=settings.OUTBOX_SENDING_LEASE_SECONDS
            ):
                finish_message(message, Status.EXPIRED)


def sweep() -> list[int]:
    """Expire what is too old to send; return ids of messages due to be dispatched again (REL-03). Dispatches nothing."""
    now = timezone.now()
    _expire_overdue(now)
    return [pk for pk, _channel, _attempts in _due_for_dispatch(now)]


def redispatch_stale() -> int:
    """The periodic sweep: expire what is too old, dispatch again what waited too long (REL-03). Returns how many.

    One sweep at a time: one that finds another running does nothing. The rows are marked (when, how often) in one
    statement before their tasks are published over one connection; those the broker refuses are marked as such by
    :func:`dispatch_batch` and tried again at the next sweep.
    """
    with waiting.one_sweep() as alone:
        if not alone:
            return 0
        now = timezone.now()
        _expire_overdue(now)
        due = _due_for_dispatch(now)
        OutboundMessage.objects.filter(pk__in=[pk for pk, _channel, _attempts in due]).update(
            last_dispatched_at=now, sweep_dispatches=F("sweep_dispatches") + 1, dispatch_failed_at=None
        )
        return dispatch_batch(due)
