"""Read-only queries behind the auditors' reports.

Each report is one SQL statement with its aggregates done by the database, so
the number of queries does not grow with the number of people, and its rows are
streamed through a server-side cursor on PostgreSQL, so memory does not either.
"""

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta

from django.db import connection
from django.db.models import Count, Max, Min, Q, TextField, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce
from django.utils import timezone

from devices.models import Registration
from identity.audit import ChainProblem, verify_chain
from identity.models import AuditEvent, User

from .columns import BOOLEAN, DATETIME, INTEGER, TEXT, Column, converter
from .exports import mask_phone_numbers

FETCH_SIZE = 2000

# Strongest factor in use, strongest first: a security key resists phishing, an app code does not, a code by
# text or call also travels over the phone network.
FACTOR_STRENGTH = {"security_key": 3, "authenticator_app": 2, "phone": 1, "none": 0}
FACTOR_LABELS = {
    "security_key": "Security key",
    "authenticator_app": "Authenticator app",
    "phone": "Text or voice call",
    "none": "None",
}
KIND_COLUMNS = {
    Registration.Kind.MOBILE: "mobile_devices",
    Registration.Kind.TABLET: "tablet_devices",
    Registration.Kind.LANDLINE: "landline_devices",
    Registration.Kind.SECURITY_KEY: "security_keys",
}

ENROLLMENT_COLUMNS: tuple[Column, ...] = (
    Column("institution_id", "Institution ID", TEXT, "The person's institution ID (their sign-in name)."),
    Column("name", "Name", TEXT, "First and last name."),
    Column("department", "Department", TEXT, "Department from the person's record."),
    Column("vpn_access", "VPN access", TEXT, "none, requested, approved or revoked."),
    Column("enrolled", "Enrolled", BOOLEAN, "Has at least one device in use whose second factor works now."),
    Column("mobile_devices", "Mobile phones", INTEGER, "Mobile phones in use with a working factor."),
    Column("tablet_devices", "Tablets", INTEGER, "Tablets in use with a working factor."),
    Column("landline_devices", "Landlines", INTEGER, "Landlines in use with a working factor."),
    Column("security_keys", "Security keys", INTEGER, "Security keys in use with a working factor."),
    Column("backup_codes_left", "Backup codes left", INTEGER, "Unused codes of the current backup-code set."),
    Column(
        "strongest_factor",
        "Strongest factor",
        TEXT,
        "security_key, above authenticator_app, above phone (text or voice call); none when not enrolled.",
    ),
    Column("first_enrolled_at", "First enrolled", DATETIME, "When the person's first device was activated."),
    Column("last_used_at", "Last second-factor use", DATETIME, "The latest successful use of any of their factors."),
    Column("locked", "Locked", BOOLEAN, "Locked out after too many wrong codes, now."),
    Column(
        "setup_held",
        "Setup held",
        BOOLEAN,
        "Reported their last factor lost and has none now: only the help desk's unlock opens a new setup.",
    ),
)

_ENROLLMENT_CTE = """
WITH reg AS (
    SELECT r.user_id, r.kind,
           CASE WHEN sk.confirmed THEN 3 WHEN app.confirmed THEN 2 WHEN ph.confirmed THEN 1 ELSE 0 END AS strength
    FROM devices_registration r
    LEFT JOIN devices_authenticatorappdevice app ON app.id = r.app_device_id
    LEFT JOIN devices_phonedevice ph ON ph.id = r.phone_device_id
    LEFT JOIN devices_securitykeydevice sk ON sk.id = r.security_key_device_id
    WHERE r.status IN ({in_use})
), per_user AS (
    SELECT user_id, MAX(strength) AS strength, {kind_counts}
    FROM reg WHERE strength > 0 GROUP BY user_id
), first_enrolled AS (
    SELECT user_id, MIN(activated_at) AS at FROM devices_registration
    WHERE activated_at IS NOT NULL GROUP BY user_id
), used AS (
    SELECT user_id, MAX(last_used_at) AS at FROM (
        SELECT user_id, last_used_at FROM devices_authenticatorappdevice WHERE last_used_at IS NOT NULL
        UNION ALL SELECT user_id, last_used_at FROM devices_phonedevice WHERE last_used_at IS NOT NULL
        UNION ALL SELECT user_id, last_used_at FROM devices_securitykeydevice WHERE last_used_at IS NOT NULL
        UNION ALL SELECT user_id, last_used_at FROM devices_backupcodedevice WHERE last_used_at IS NOT NULL
    ) stamps GROUP BY user_id
), backup AS (
    SELECT d.user_id, COUNT(*) AS left_count
    FROM devices_backupcodedevice d JOIN devices_backupcode c ON c.device_id = d.id
    WHERE d.confirmed AND c.used_at IS NULL GROUP BY d.user_id
), report AS (
    SELECT u.username AS institution_id,
           TRIM(u.first_name || ' ' || u.last_name) AS name,
           u.department AS department,
           u.vpn_access AS vpn_access,
           COALESCE(pu.strength, 0) > 0 AS enrolled,
           {kind_columns},
           COALESCE(b.left_count, 0) AS backup_codes_left,
           CASE COALESCE(pu.strength, 0) {strength_names} END AS strongest_factor,
           fe.at AS first_enrolled_at,
           us.at AS last_used_at,
           (u.locked_at IS NOT NULL AND (u.locked_until IS NULL OR u.locked_until > %s)) AS locked,
           (u.lost_last_factor_at IS NOT NULL AND COALESCE(pu.strength, 0) = 0) AS setup_held
    FROM identity_user u
    LEFT JOIN per_user pu ON pu.user_id = u.id
    LEFT JOIN first_enrolled fe ON fe.user_id = u.id
    LEFT JOIN used us ON us.user_id = u.id
    LEFT JOIN backup b ON b.user_id = u.id
    WHERE u.is_active
)
"""


def enrollment_cte() -> str:
    # Built only from the constants above, never from input: the filters' values go in as parameters.
    return _ENROLLMENT_CTE.format(
        in_use=", ".join(f"'{status}'" for status in Registration.IN_USE),
        kind_counts=", ".join(
            f"SUM(CASE WHEN kind = '{kind}' THEN 1 ELSE 0 END) AS {name}" for kind, name in KIND_COLUMNS.items()
        ),
        kind_columns=", ".join(f"COALESCE(pu.{name}, 0) AS {name}" for name in KIND_COLUMNS.values()),
        strength_names=" ".join(
            f"WHEN {strength} THEN '{name}'" for name, strength in FACTOR_STRENGTH.items() if strength
        )
        + " ELSE 'none'",
    )


class Filters:
    """What an auditor narrowed a report to; every field optional."""

    def as_dict(self) -> dict:
        """The filters that are set, as plain JSON values (for the audit log and the page)."""
        return {
            name: value.isoformat() if isinstance(value, date) else value
            for name, value in asdict(self).items()
            if value not in ("", None)
        }


@dataclass(frozen=True)
class EnrollmentFilters(Filters):
    """What an auditor narrowed the enrollment report to; every field optional."""

    department: str = ""
    vpn_access: str = ""
    enrolled: bool | None = None
    has_kind: str = ""
    strongest_factor: str = ""
    enrolled_from: date | None = None
    enrolled_to: date | None = None
    last_used_before: date | None = None


def _start_of(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _where(filters: EnrollmentFilters) -> tuple[str, list]:
    clauses: list[str] = []
    params: list = []
    if filters.department:
        clauses.append("department = %s")
        params.append(filters.department)
    if filters.vpn_access:
        clauses.append("vpn_access = %s")
        params.append(filters.vpn_access)
    if filters.enrolled is not None:
        clauses.append("enrolled" if filters.enrolled else "NOT enrolled")
    if filters.has_kind:
        clauses.append(f"{KIND_COLUMNS[filters.has_kind]} > 0")
    if filters.strongest_factor:
        clauses.append("strongest_factor = %s")
        params.append(filters.strongest_factor)
    if filters.enrolled_from:
        clauses.append("first_enrolled_at >= %s")
        params.append(_start_of(filters.enrolled_from))
    if filters.enrolled_to:
        clauses.append("first_enrolled_at < %s")
        params.append(_start_of(filters.enrolled_to + timedelta(days=1)))
    if filters.last_used_before:
        # Stale: enrolled, and no factor used since that day (never used counts as stale too).
        clauses.append("enrolled AND (last_used_at IS NULL OR last_used_at < %s)")
        params.append(_start_of(filters.last_used_before))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


@dataclass
class EnrollmentTotals:
    people: int = 0
    enrolled: int = 0
    vpn_approved: int = 0
    vpn_approved_not_enrolled: int = 0
    locked: int = 0
    setup_held: int = 0
    devices: dict = field(default_factory=dict)
    strongest: dict = field(default_factory=dict)

    @property
    def not_enrolled(self) -> int:
        return self.people - self.enrolled

    @property
    def enrolled_percent(self) -> float:
        return 100.0 * self.enrolled / self.people if self.people else 0.0


def enrollment_totals(filters: EnrollmentFilters) -> EnrollmentTotals:
    """Counts over the filtered set, in one query."""
    where, params = _where(filters)
    strongest = [name for name in FACTOR_STRENGTH]
    sums = [
        "COUNT(*)",
        "SUM(CASE WHEN enrolled THEN 1 ELSE 0 END)",
        "SUM(CASE WHEN vpn_access = 'approved' THEN 1 ELSE 0 END)",
        "SUM(CASE WHEN vpn_access = 'approved' AND NOT enrolled THEN 1 ELSE 0 END)",
        "SUM(CASE WHEN locked THEN 1 ELSE 0 END)",
        "SUM(CASE WHEN setup_held THEN 1 ELSE 0 END)",
        *(f"SUM({name})" for name in KIND_COLUMNS.values()),
        *(f"SUM(CASE WHEN strongest_factor = '{name}' THEN 1 ELSE 0 END)" for name in strongest),
    ]
    sql = enrollment_cte() + f"SELECT {', '.join(sums)} FROM report{where}"  # noqa: S608 (constants; values are params)
    with connection.cursor() as cursor:
        cursor.execute(sql, [timezone.now(), *params])
        row = [int(v or 0) for v in cursor.fetchone()]
    kinds = list(KIND_COLUMNS)
    return EnrollmentTotals(
        people=row[0],
        enrolled=row[1],
        vpn_approved=row[2],
        vpn_approved_not_enrolled=row[3],
        locked=row[4],
        setup_held=row[5],
        devices={kind: row[6 + i] for i, kind in enumerate(kinds)},
        strongest={name: row[6 + len(kinds) + i] for i, name in enumerate(strongest)},
    )


def enrollment_sql(filters: EnrollmentFilters, *, limit: int | None = None, offset: int = 0) -> tuple[str, list]:
    """The report's one SELECT and its parameters (the benchmark hands the same statement to ``COPY``)."""
    where, params = _where(filters)
    columns = ", ".join(column.key for column in ENROLLMENT_COLUMNS)
    sql = enrollment_cte() + f"SELECT {columns} FROM report{where} ORDER BY institution_id"  # noqa: S608 (as above)
    if limit is not None:
        sql += " LIMIT %s OFFSET %s"
        params = [*params, limit, offset]
    return sql, [timezone.now(), *params]


def enrollment_rows(filters: EnrollmentFilters, *, limit: int | None = None, offset: int = 0) -> Iterator[tuple]:
    """The report's rows, typed as :data:`ENROLLMENT_COLUMNS`, streamed (one query, a server-side cursor)."""
    sql, params = enrollment_sql(filters, limit=limit, offset=offset)
    yield from stream(sql, params, ENROLLMENT_COLUMNS)


def stream(sql: str, params: list, columns: tuple[Column, ...]) -> Iterator[tuple]:
    connection.ensure_connection()
    # PostgreSQL returns the columns' types already; SQLite returns text for times and 0/1 for booleans.
    convert = None if connection.vendor == "postgresql" else converter(columns)
    # Django's chunked cursor is a named (server-side) cursor on PostgreSQL: rows arrive FETCH_SIZE at a time.
    with connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while batch := cursor.fetchmany(FETCH_SIZE):
            if convert is None:
                yield from batch
            else:
                for row in batch:
                    yield convert(row)


def departments() -> list[str]:
    return list(
        User.objects.exclude(department="").order_by("department").values_list("department", flat=True).distinct()
    )


# --- The audit log report ---------------------------------------------------------------------------------

# Actions by the group an auditor asks about, by prefix. "helpdesk." is what the help desk's actions are named.
ACTION_GROUPS: dict[str, tuple[str, ...]] = {
    "signin": ("signin.",),
    "enrollment": ("enrollment.", "device.", "phone.", "security_key.", "backup_codes.", "activation_link."),
    "recovery": ("recovery.",),
    "helpdesk": ("helpdesk.",),
    "lockout": ("account.",),
    "export": ("report.",),
    "admin": ("vpn_access.", "retention.", "admin."),
}
ACTION_GROUP_LABELS = {
    "signin": "Sign-in",
    "enrollment": "Enrollment and devices",
    "recovery": "Recovery",
    "helpdesk": "Help desk",
    "lockout": "Lockout",
    "export": "Export",
    "admin": "Administration",
}

AUDIT_COLUMNS: tuple[Column, ...] = (
    Column("sequence", "Sequence", INTEGER, "The event's number in the hash chain; gap-free."),
    Column("created_at", "Time", DATETIME, "When it happened."),
    Column("group", "Group", TEXT, "The action's group: sign-in, enrollment, recovery, help desk, lockout, ..."),
    Column("action", "Action", TEXT, "What happened, e.g. signin.second_factor_ok."),
    Column("actor", "Actor", TEXT, "Institution ID of who did it; empty for the system or an unknown person."),
    Column("subject", "Subject", TEXT, "Institution ID of whom it was about."),
    Column("ip", "IP address", TEXT, "The client's address, when there was one."),
    Column("details", "Details", TEXT, "What the event recorded, as JSON; never a secret; phone numbers masked."),
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


def _in_time_range(filters: AuditFilters):
    events = AuditEvent.objects.all()
    if filters.start:
        events = events.filter(created_at__gte=_start_of(filters.start))
    if filters.end:
        events = events.filter(created_at__lt=_start_of(filters.end + timedelta(days=1)))
    return events


def _audit_events(filters: AuditFilters):
    events = _in_time_range(filters)
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
            mask_phone_numbers(json.dumps(details, sort_keys=True, default=str)),
        )


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
    span = _in_time_range(filters).aggregate(first=Min("sequence"), last=Max("sequence"))
    if span["first"] is None:
        return ChainStatus(None, None, None)
    return ChainStatus(span["first"], span["last"], verify_chain(first=span["first"], last=span["last"]))


# --- Help-desk activity ----------------------------------------------------------------------------------------

# The help desk's actions are audited as "helpdesk.*" with the identity check in details["identity_check_method"];
# the recovery link and the unlock predate them and are counted too (the link's check is in details["identity_check"]).
DESK_ACTION_PREFIX = "helpdesk."
EARLIER_DESK_ACTIONS = ("recovery.link_sent", "account.unlocked")

DESK_COLUMNS: tuple[Column, ...] = (
    Column("agent", "Agent", TEXT, "Institution ID of the help-desk member who acted."),
    Column("action", "Action", TEXT, "What they did (helpdesk.*, recovery.link_sent, account.unlocked)."),
    Column("events", "Times", INTEGER, "How many times, in the time range."),
    Column("methods", "Identity checks", TEXT, "The identity-check methods recorded, with how often each was used."),
    Column("first_at", "First", DATETIME, "The first time in the range."),
    Column("last_at", "Last", DATETIME, "The last time in the range."),
)


@dataclass(frozen=True)
class DeskFilters(Filters):
    start: date | None = None
    end: date | None = None
    agent: str = ""


def _desk_groups(filters: DeskFilters) -> list[dict]:
    """Events per agent, action and identity-check method: one grouped query (a handful of rows per agent)."""
    events = _in_time_range(AuditFilters(start=filters.start, end=filters.end)).filter(
        Q(action__startswith=DESK_ACTION_PREFIX) | Q(action__in=EARLIER_DESK_ACTIONS), actor__isnull=False
    )
    if filters.agent:
        events = events.filter(actor__username=filters.agent)
    return list(
        events.annotate(
            method=Coalesce(
                KeyTextTransform("identity_check_method", "details"),
                KeyTextTransform("identity_check", "details"),
                Value(""),
                output_field=TextField(),
            )
        )
        .values("actor__username", "action", "method")
        .annotate(events=Count("id"), first_at=Min("created_at"), last_at=Max("created_at"))
        .order_by("actor__username", "action", "method")
    )


def desk_activity(filters: DeskFilters) -> list[tuple]:
    """One row per agent and action, typed as :data:`DESK_COLUMNS`."""
    rows: dict[tuple[str, str], dict] = {}
    for group in _desk_groups(filters):
        key = (group["actor__username"], group["action"])
        row = rows.setdefault(key, {"events": 0, "methods": {}, "first_at": group["first_at"], "last_at": None})
        row["events"] += group["events"]
        if group["method"]:
            row["methods"][group["method"]] = group["events"]
        row["first_at"] = min(row["first_at"], group["first_at"])
        row["last_at"] = max(filter(None, (row["last_at"], group["last_at"])))
    return [
        (
            agent,
            action,
            row["events"],
            "; ".join(f"{method}: {count}" for method, count in sorted(row["methods"].items())),
            row["first_at"],
            row["last_at"],
        )
        for (agent, action), row in rows.items()
    ]


def desk_rows(filters: DeskFilters, *, limit: int | None = None, offset: int = 0) -> Iterator[tuple]:
    rows = desk_activity(filters)
    yield from rows[offset : offset + limit] if limit is not None else rows


def desk_summary(filters: DeskFilters) -> dict:
    """Totals per agent and per identity-check method, from the same grouped query."""
    per_agent: dict[str, int] = {}
    per_method: dict[str, int] = {}
    for group in _desk_groups(filters):
        per_agent[group["actor__username"]] = per_agent.get(group["actor__username"], 0) + group["events"]
        method = group["method"] or "(none recorded)"
        per_method[method] = per_method.get(method, 0) + group["events"]
    return {"per_agent": per_agent, "per_method": per_method, "total": sum(per_agent.values())}
