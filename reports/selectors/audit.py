"""The audit log report: events filtered by time, group and person, and whether their hash chain holds."""

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime

from django.core.cache import cache
from django.db.models import Max, Min, Q
from django.utils import timezone

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
    # Events #first to #verified_to were verified by earlier loads, each linked to the one before from the first event
    # of the log, which was last read in full at ``verified_at`` (a load with nothing remembered, or the button); they
    # are taken as those checks left them; the rest were verified now. None: all verified now.
    verified_to: int | None = None
    verified_at: datetime | None = None

    @property
    def verifies(self) -> bool:
        return self.problem is None

    @property
    def checked_now_from(self) -> int | None:
        """The first event verified on this load, or None when the earlier check covered the whole range."""
        if self.verified_to is None:
            return self.first
        return self.verified_to + 1 if self.last is not None and self.verified_to < self.last else None

    @property
    def words(self) -> str:
        """The outcome in a sentence (the page's, and the message after "Verify again")."""
        if self.first is None:
            return "No events in this time range: nothing to verify."
        if self.problem is not None:
            return (
                f"The hash chain does NOT verify over events #{self.first} to #{self.last}: row "
                f"#{self.problem.sequence}, {self.problem.reason}. Report this to the information-security office."
            )
        return (
            f"The hash chain verifies over events #{self.first} to #{self.last} (every event of the time range, "
            "whatever the other filters)."
        )


# The chain's head as far as it was verified from the first event: {"sequence", "hash", "at"}. Rows up to it are not
# read again on a page load (200,000 events took 6 to 16 s, bench/README.md); a load verifies the events after it, linked
# to its hash, and checks that the head's row still has that hash. "Verify again" re-reads every row of the range.
VERIFIED_HEAD_KEY = "reports:audit-chain-verified-head"


def _remembered_head() -> dict | None:
    head = cache.get(VERIFIED_HEAD_KEY)
    if not head:
        return None
    current = AuditEvent.objects.filter(sequence=head["sequence"]).values_list("hash", flat=True).first()
    if current != head["hash"]:
        # The head's row changed or went: what was verified before says nothing now.
        cache.delete(VERIFIED_HEAD_KEY)
        return None
    return head


def _remember_head(sequence: int, *, read_in_full_at: datetime) -> None:
    hash_ = AuditEvent.objects.filter(sequence=sequence).values_list("hash", flat=True).first()
    if hash_ is not None:
        cache.set(VERIFIED_HEAD_KEY, {"sequence": sequence, "hash": hash_, "at": read_in_full_at}, timeout=None)


def _verify(first: int, last: int) -> ChainProblem | None:
    problem = verify_chain(first=first, last=last)
    if problem is not None:
        cache.delete(VERIFIED_HEAD_KEY)
    elif first == 1:
        _remember_head(last, read_in_full_at=timezone.now())
    return problem


def audit_chain_status(filters: AuditFilters, *, in_full: bool = False) -> ChainStatus:
    """Whether the hash chain verifies over every event of the time range (not only the filtered ones).

    The check is :func:`identity.audit.verify_chain` over that span of sequence numbers. Events up to the head an
    earlier check verified from the first event are not read again unless ``in_full``: the status says when they were
    verified. A problem found forgets that head, so every later load checks the whole range again until the chain is
    whole. Reads the log; remembers the verified head in the cache.
    """
    span = events_in_time_range(filters).aggregate(first=Min("sequence"), last=Max("sequence"))
    first, last = span["first"], span["last"]
    if first is None:
        return ChainStatus(None, None, None)
    head = None if in_full else _remembered_head()
    if head is None or head["sequence"] < first - 1:
        return ChainStatus(first, last, _verify(first, last))
    verified_to = min(head["sequence"], last)
    if verified_to < last:
        problem = verify_chain(first=verified_to + 1, last=last)
        if problem is not None:
            cache.delete(VERIFIED_HEAD_KEY)
            return ChainStatus(first, last, problem)
        # Linked to the head's hash: verified from the first event still, though the rows before were not read now.
        _remember_head(last, read_in_full_at=head["at"])
    if verified_to < first:  # the earlier check ended just before this range: all of it was verified now
        return ChainStatus(first, last, None)
    return ChainStatus(first, last, None, verified_to=verified_to, verified_at=head["at"])
