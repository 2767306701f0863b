"""Read-only numbers for the auditors' dashboard and the weekly summary: a few grouped queries, none per person."""

from dataclasses import dataclass

from django.db import connection
from django.db.models import Count, Q
from django.db.models.functions import TruncWeek
from django.utils import timezone

from identity.models import AuditEvent

from .columns import as_datetime
from .selectors import (
    DESK_ACTION_PREFIX,
    EARLIER_DESK_ACTIONS,
    EnrollmentFilters,
    enrollment_cte,
    enrollment_totals,
)

BY_DEPARTMENT = (
    "SELECT department, COUNT(*), SUM(CASE WHEN enrolled THEN 1 ELSE 0 END) FROM report "
    "GROUP BY department ORDER BY department"
)


@dataclass(frozen=True)
class Bar:
    label: str
    value: int
    # Share of the chart's largest value, 0-100, for the bar's length.
    length: float
    note: str = ""


def bars(pairs: list[tuple[str, int]], notes: list[str] | None = None) -> list[Bar]:
    top = max((value for _, value in pairs), default=0) or 1
    notes = notes or [""] * len(pairs)
    return [
        Bar(label, value, round(100 * value / top, 1), note) for (label, value), note in zip(pairs, notes, strict=True)
    ]


def enrolled_per_week() -> list[tuple[str, int, int]]:
    """(week starting, people first enrolled that week, cumulative): one grouped query."""
    trunc_sql, trunc_params = connection.ops.datetime_trunc_sql(
        "week", "first_enrolled_at", (), timezone.get_current_timezone_name()
    )
    sql = (
        enrollment_cte() + f"SELECT {trunc_sql} AS week, COUNT(*) FROM report WHERE first_enrolled_at IS NOT NULL "  # noqa: S608
        "GROUP BY 1 ORDER BY 1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [timezone.now(), *trunc_params])
        weeks = cursor.fetchall()
    total = 0
    result = []
    for week, count in weeks:
        total += count
        result.append((timezone.localtime(as_datetime(week)).date().isoformat() if week else "", count, total))
    return result


def enrolled_by_department() -> list[tuple[str, int, int, int]]:
    """(department, people, enrolled, percent enrolled): one grouped query."""
    sql = enrollment_cte() + BY_DEPARTMENT  # noqa: S608 (constants only)
    with connection.cursor() as cursor:
        cursor.execute(sql, [timezone.now()])
        rows = [(department or "(none)", people, int(enrolled or 0)) for department, people, enrolled in cursor]
    return [
        (name, people, enrolled, round(100 * enrolled / people) if people else 0) for name, people, enrolled in rows
    ]


def desk_actions_per_week(weeks: int = 12) -> list[tuple[str, int]]:
    since = timezone.now() - timezone.timedelta(weeks=weeks)
    rows = (
        AuditEvent.objects.filter(
            Q(action__startswith=DESK_ACTION_PREFIX) | Q(action__in=EARLIER_DESK_ACTIONS),
            actor__isnull=False,
            created_at__gte=since,
        )
        .annotate(week=TruncWeek("created_at"))
        .values("week")
        .annotate(n=Count("id"))
        .order_by("week")
    )
    return [(timezone.localtime(row["week"]).date().isoformat(), row["n"]) for row in rows]


def headline() -> dict:
    """The numbers an auditor asks first, for the dashboard's top and the weekly email."""
    totals = enrollment_totals(EnrollmentFilters())
    approved = totals.vpn_approved
    return {
        "totals": totals,
        "vpn_approved_not_enrolled_percent": (100.0 * totals.vpn_approved_not_enrolled / approved if approved else 0.0),
    }
