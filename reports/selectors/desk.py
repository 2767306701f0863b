"""Help-desk activity: actions per agent and kind, with the identity checks they relied on."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

from django.db.models import Count, Max, Min, Q, TextField, Value
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce

from identity import events as event_words

from ..columns import DATETIME, INTEGER, TEXT, Column
from .audit import AuditFilters, events_in_time_range
from .common import Filters

# The help desk's actions are audited as "helpdesk.*" with the identity check in details["identity_check_method"];
# the recovery link and the unlock write events of their own (also when run from the management commands) and are
# counted too (the link's check is in details["identity_check"]).
DESK_ACTION_PREFIX = "helpdesk."
EARLIER_DESK_ACTIONS = ("recovery.link_sent", "account.unlocked")

DESK_COLUMNS: tuple[Column, ...] = (
    Column("agent", "Agent", TEXT, "Institution ID of the help-desk member who acted.", masked=False),
    Column("action", "Action", TEXT, "What they did.", masked=False, words=event_words.title),
    Column(
        "desk_action",
        "Desk action",
        TEXT,
        "Which of the desk's actions, for an action run or asked for at the desk.",
        masked=False,
        words=lambda name: event_words.VALUE_WORDS.get("action", {}).get(name),
    ),
    Column("events", "Times", INTEGER, "How many times, in the time range."),
    Column(
        "methods",
        "Identity checks",
        TEXT,
        "The identity-check methods recorded, with how often each was used.",
        masked=False,
        words=lambda methods: "; ".join(
            f"{_method_words(method)}: {count}"
            for method, _, count in (part.rpartition(": ") for part in methods.split("; "))
        ),
    ),
    Column("first_at", "First", DATETIME, "The first time in the range."),
    Column("last_at", "Last", DATETIME, "The last time in the range."),
)


def _method_words(method: str) -> str:
    # The help desk names its identity-check methods in identity.events (the desk's app registers them there).
    return event_words.VALUE_WORDS.get("identity_check_method", {}).get(method, method)


@dataclass(frozen=True)
class DeskFilters(Filters):
    start: date | None = None
    end: date | None = None
    agent: str = ""


def _desk_groups(filters: DeskFilters) -> list[dict]:
    """Events per agent, action, desk action and identity-check method: one grouped query (a handful of rows per
    agent)."""
    events = events_in_time_range(AuditFilters(start=filters.start, end=filters.end)).filter(
        Q(action__startswith=DESK_ACTION_PREFIX) | Q(action__in=EARLIER_DESK_ACTIONS), actor__isnull=False
    )
    if filters.agent:
        events = events.filter(actor__username=filters.agent)
    return list(
        events.annotate(
            # The desk's runner writes every action as "helpdesk.action", naming it in details["action"] and its
            # check in details["method"].
            desk_action=Coalesce(KeyTextTransform("action", "details"), Value(""), output_field=TextField()),
            method=Coalesce(
                KeyTextTransform("method", "details"),
                KeyTextTransform("identity_check_method", "details"),
                KeyTextTransform("identity_check", "details"),
                Value(""),
                output_field=TextField(),
            ),
        )
        .values("actor__username", "action", "desk_action", "method")
        .annotate(events=Count("id"), first_at=Min("created_at"), last_at=Max("created_at"))
        .order_by("actor__username", "action", "desk_action", "method")
    )


def desk_activity(filters: DeskFilters) -> list[tuple]:
    """One row per agent, action and desk action, typed as :data:`DESK_COLUMNS`."""
    rows: dict[tuple[str, str, str], dict] = {}
    for group in _desk_groups(filters):
        key = (group["actor__username"], group["action"], group["desk_action"])
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
            desk_action,
            row["events"],
            "; ".join(f"{method}: {count}" for method, count in sorted(row["methods"].items())),
            row["first_at"],
            row["last_at"],
        )
        for (agent, action, desk_action), row in rows.items()
    ]


def desk_page_row(row: tuple) -> tuple:
    """One of :func:`desk_activity`'s rows as the page shows it: in words, the action's sentence naming the desk
    action it ran."""
    agent, action, desk_action, *rest = (column.shown(value) for column, value in zip(DESK_COLUMNS, row, strict=True))
    if row[2]:
        action = event_words.describe(row[1], {"action": row[2]})
    return (agent, action, desk_action, *rest)


def desk_rows(filters: DeskFilters, *, limit: int | None = None, offset: int = 0) -> Iterator[tuple]:
    rows = desk_activity(filters)
    yield from rows[offset : offset + limit] if limit is not None else rows


def desk_summary(filters: DeskFilters) -> dict:
    """Totals per agent and per identity-check method, and how many rows (agent, action and desk action) the report
    has, from the same grouped query."""
    per_agent: dict[str, int] = {}
    per_method: dict[str, int] = {}
    rows: set[tuple[str, str, str]] = set()
    for group in _desk_groups(filters):
        rows.add((group["actor__username"], group["action"], group["desk_action"]))
        per_agent[group["actor__username"]] = per_agent.get(group["actor__username"], 0) + group["events"]
        method = _method_words(group["method"]) if group["method"] else "(none recorded)"
        per_method[method] = per_method.get(method, 0) + group["events"]
    return {"per_agent": per_agent, "per_method": per_method, "total": sum(per_agent.values()), "rows": len(rows)}
