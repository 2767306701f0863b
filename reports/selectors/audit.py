"""The audit log report: events filtered by time, group and person, and whether their hash chain holds."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

from django.db.models import Max, Min, Q

from devices.phone_numbers import mask_phone_numbers_in
from identity import events as event_words
from identity.audit import ChainProblem, verify_chain
from identity.models import AuditEvent

from ..columns import DATETIME, INTEGER, TEXT, Column
from .common import FETCH_SIZE, Filters, within_days

# Actions by the group an auditor asks about, by prefix. "helpdesk." is what the help desk's actions are named. Both
# campaign prefixes stay: events already in the hash chain keep the names they were written with. A test holds that
# every action of identity.events has a group.
ACTION_GROUPS: dict[str, tuple[str, ...]] = {
    "signin": ("signin.", "sessions."),
    "enrollment": ("enrollment.", "device.", "phone.", "security_key.", "backup_codes.", "activation_link."),
    "recovery": ("recovery.", "bypass_codes."),
    "helpdesk": ("helpdesk.",),
    "lockout": ("account.",),
    "people": ("person.", "directory."),
    "vpn": ("vpn.",),
    "campaigns": ("campaigns.", "campaign."),
    "export": ("report.",),
    "admin": ("vpn_access.", "retention.", "admin.", "encryption."),
}
ACTION_GROUP_LABELS = {
    "signin": "Sign-in",
    "enrollment": "Enrollment and devices",
    "recovery": "Recovery",
    "helpdesk": "Help desk",
    "lockout": "Lockout",
    "people": "People and the directory",
    "vpn": "VPN",
    "campaigns": "Enrollment campaigns",
    "export": "Export",
    "admin": "Administration",
}

AUDIT_COLUMNS: tuple[Column, ...] = (
    Column("sequence", "Sequence", INTEGER, "The event's number in the hash chain; gap-free."),
    Column("created_at", "Time", DATETIME, "When it happened."),
    Column(
        "group",
        "Group",
        TEXT,
        "The action's group: sign-in, enrollment, recovery, help desk, lockout, ...",
        masked=False,
        words=ACTION_GROUP_LABELS.get,
    ),
    Column(
        "action",
        "Action",
        TEXT,
        "What happened, in words, with what the event recorded.",
        masked=False,
    ),
    Column(
        "actor", "Actor", TEXT, "Institution ID of who did it; empty for the system or an unknown person.", masked=False
    ),
    Column("subject", "Subject", TEXT, "Institution ID of whom it was about.", masked=False),
    Column("ip", "IP address", TEXT, "The client's address, when there was one.", masked=False),
    Column(
        "details", "Details", TEXT, "What the event recorded, as it was written; never a secret; phone numbers masked."
    ),
)


def action_group(action: str) -> str:
    for group, prefixes in ACTION_GROUPS.items():
        if action.startswith(prefixes):
            return group
    return ""


@dataclass(frozen=True)
class AuditFilters(Filters):
    start: date | None = None
    end: date | None = None
    group: str = ""
    actor: str = ""
    subject: str = ""


def events_in_time_range(filters: AuditFilters):
    return within_days(AuditEvent.objects.all(), "created_at", filters.start, filters.end)


def _audit_events(filters: AuditFilters):
    events = events_in_time_range(filters)
    if filters.group:
        match = Q()
        for prefix in ACTION_GROUPS[filters.group]:
            match |= Q(action__startswith=prefix)
        events = events.filter(match)
    if filters.actor:
        events = events.filter(actor__username=filters.actor)
    if filters.subject:
        events = events.filter(subject__username=filters.subject)
    return events


def audit_count(filters: AuditFilters) -> int:
    return _audit_events(filters).count()


def audit_rows(filters: AuditFilters, *, limit: int | None = None, offset: int = 0) -> Iterator[tuple]:
    """The events, oldest first, typed as :data:`AUDIT_COLUMNS` (one query, streamed)."""
    events = (
        _audit_events(filters)
        .order_by("sequence")
        .values_list("sequence", "created_at", "action", "actor__username", "subject__username", "ip", "details")
    )
    if limit is not None:
        events = events[offset : offset + limit]
    for sequence, created_at, action, actor, subject, ip, details in events.iterator(chunk_size=FETCH_SIZE):
        yield (
            sequence,
            created_at,
            action_group(action),
            action,
            actor or "",
            subject or "",
            ip or "",
            # Readable text as it is (a name with an accent, a quotation mark), not as \u escapes.
            json.dumps(mask_phone_numbers_in(details), sort_keys=True, default=str, ensure_ascii=False),
        )


def audit_page_row(row: tuple) -> tuple:
    """One of :func:`audit_rows`'s rows as the page shows it: the group's name, the event's sentence and its details
    in words (:mod:`identity.events`, from the masked details), where the files keep the code names and the JSON."""
    sequence, created_at, group, action, actor, subject, ip, details = row
    recorded = json.loads(details)
    sentence = event_words.describe(action, recorded)
    group = ACTION_GROUP_LABELS.get(group, group)
    return (sequence, created_at, group, sentence, actor, subject, ip, event_words.detail_words(recorded))


@dataclass(frozen=True)
class ChainStatus:
    first: int | None
    last: int | None
    problem: ChainProblem | None

    @property
    def verifies(self) -> bool:
        return self.problem is None


def audit_chain_status(filters: AuditFilters) -> ChainStatus:
    """Whether the hash chain verifies over every event of the time range (not only the filtered ones).

    The check is :func:`identity.audit.verify_chain` over that span of sequence numbers.
    """
    span = events_in_time_range(filters).aggregate(first=Min("sequence"), last=Max("sequence"))
    if span["first"] is None:
        return ChainStatus(None, None, None)
    return ChainStatus(span["first"], span["last"], verify_chain(first=span["first"], last=span["last"]))
