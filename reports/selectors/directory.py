"""Directory sync runs: each LDAP sync's counts, status and who applied or discarded a held run (read-only)."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

from django.db.models import Count, F

from identity.directory.models import COUNTS, DirectorySyncRun

from ..columns import BOOLEAN, DATETIME, INTEGER, TEXT, Column
from .common import Filters, within_days

SYNC_COLUMNS: tuple[Column, ...] = (
    Column("started_at", "Started", DATETIME, "When the run started."),
    Column("finished_at", "Finished", DATETIME, "When it finished (empty while running)."),
    Column(
        "status",
        "Status",
        TEXT,
        "Running, applied, held (waiting for a superuser), discarded or failed.",
        words=dict(DirectorySyncRun.Status.choices).get,
    ),
    Column("dry_run", "Dry run", BOOLEAN, "A dry run counts what would change and changes nobody."),
    Column("only_person", "Person", TEXT, "The one institution ID synced; empty for everyone.", masked=False),
    Column(
        "trigger",
        "Started by",
        TEXT,
        "The schedule, a command, or a person in the admin.",
        words=dict(DirectorySyncRun.Trigger.choices).get,
    ),
    Column("triggered_by", "Who", TEXT, "Institution ID of the person who started it, if any.", masked=False),
    Column("read", "Entries read", INTEGER, "Directory entries read."),
    *(
        Column(name, name.capitalize(), INTEGER, f"People {name} (what it would do, for dry and held runs).")
        for name in COUNTS
    ),
    Column("decided_by", "Applied or discarded by", TEXT, "The superuser who decided a held run.", masked=False),
    Column("decided_at", "Decided", DATETIME, "When they decided."),
)


@dataclass(frozen=True)
class SyncFilters(Filters):
    start: date | None = None
    end: date | None = None
    status: str = ""


def _runs(filters: SyncFilters):
    runs = within_days(DirectorySyncRun.objects.all(), "started_at", filters.start, filters.end)
    if filters.status:
        runs = runs.filter(status=filters.status)
    return runs


def sync_rows(filters: SyncFilters, *, limit: int | None = None, offset: int = 0) -> Iterator[tuple]:
    runs = _runs(filters).annotate(who=F("triggered_by__username"), decider=F("decided_by__username"))
    names = [column.key for column in SYNC_COLUMNS]
    names[names.index("triggered_by")], names[names.index("decided_by")] = "who", "decider"
    runs = runs.values_list(*names)
    runs = runs[offset : offset + limit] if limit is not None else runs[offset:]
    for row in runs.iterator(chunk_size=2000):
        yield tuple(
            "" if value is None and column.type == TEXT else value
            for column, value in zip(SYNC_COLUMNS, row, strict=True)
        )


def sync_count(filters: SyncFilters) -> int:
    return _runs(filters).count()


def sync_summary(filters: SyncFilters) -> dict:
    per_status = dict(_runs(filters).values_list("status").annotate(n=Count("id")).order_by("status"))
    labels = dict(DirectorySyncRun.Status.choices)
    return {
        "per_status": {labels.get(status, status): n for status, n in per_status.items()},
        "count": sum(per_status.values()),
    }
