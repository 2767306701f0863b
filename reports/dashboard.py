"""Read-only numbers for the auditors' dashboard and the weekly summary: a few grouped queries, none per person."""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from django.db import connection
from django.db.models import Count, Q
from django.db.models.functions import TruncWeek
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from identity.models import AuditEvent

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


# A chart's drawing, in the SVG's own units: it scales to the width it is given, text with it.
CHART_WIDTH = 440
ROW_HEIGHT = 24
BAR_HEIGHT = 16
AXIS_HEIGHT = 40
CHAR_WIDTH = 6.6  # of the 12-unit font, on average, to size the labels' column
LABEL_CHARS = 22  # a longer label is cut short ("…"); the table beside the chart has it whole
VALUE_WIDTH = 52


def _units(number: float) -> str:
    # Coordinates as plain text: a template would write a float in the locale's format ("12,5").
    return f"{number:.1f}"


def _nice_step(largest: float, *, ticks: int = 4) -> float:
    """A round step (1, 2 or 5 times a power of ten) that reaches ``largest`` in at most ``ticks`` steps."""
    rough = max(largest / ticks, 1)
    power = 10 ** math.floor(math.log10(rough))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= rough)


@dataclass(frozen=True)
class Bar:
    label: str  # as it shows on the chart (cut short if long)
    value: int
    text: str  # the value as the chart writes it beside the bar
    y: str
    text_y: str
    width: str
    value_x: str


@dataclass(frozen=True)
class Chart:
    """A horizontal bar chart that reads on its own: a label and a value on every bar, and a scale under them."""

    bars: list[Bar]
    ticks: list[tuple[str, str]]  # (x, the value written under it)
    axis: str  # what the scale counts
    width: int
    height: int
    plot_x: str
    plot_bottom: str
    tick_y: str
    axis_x: str
    axis_y: str

    def __bool__(self) -> bool:
        return bool(self.bars)


def chart(pairs: list[tuple[str, int]], *, axis: str, percent: bool = False) -> Chart:
    """Lay out ``pairs`` (label, value) as bars on a scale from 0 (to 100 for ``percent``)."""
    suffix = "%" if percent else ""
    labels = [label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…" for label, _ in pairs]
    plot_x = 8 + CHAR_WIDTH * max((len(label) for label in labels), default=0) + 8
    plot_width = CHART_WIDTH - plot_x - VALUE_WIDTH
    largest = max((value for _, value in pairs), default=0)
    step = 25 if percent else _nice_step(largest)
    top = 100 if percent else step * max(1, math.ceil(largest / step))
    plot_bottom = len(pairs) * ROW_HEIGHT
    bars = []
    for row, ((_, value), label) in enumerate(zip(pairs, labels, strict=True)):
        length = plot_width * value / top
        y = row * ROW_HEIGHT + (ROW_HEIGHT - BAR_HEIGHT) / 2
        bars.append(
            Bar(
                label=label,
                value=value,
                text=f"{value:,}{suffix}",
                y=_units(y),
                text_y=_units(y + BAR_HEIGHT - 4),
                width=_units(length),
                value_x=_units(plot_x + length + 6),
            )
        )
    ticks = [
        (_units(plot_x + plot_width * value / top), f"{value:,}{suffix}") for value in range(0, int(top) + 1, int(step))
    ]
    return Chart(
        bars=bars,
        ticks=ticks,
        axis=axis,
        width=CHART_WIDTH,
        height=plot_bottom + AXIS_HEIGHT,
        plot_x=_units(plot_x),
        plot_bottom=_units(plot_bottom),
        tick_y=_units(plot_bottom + 16),
        axis_x=_units(plot_x + plot_width / 2),
        axis_y=_units(plot_bottom + 34),
    )


def enrolled_per_week() -> list[tuple[str, int, int]]:
    """(week starting, people first enrolled that week, cumulative): one grouped query."""
    # Django returns (sql, params) here; django-stubs still says str.
    trunc_sql, trunc_params = cast(
        tuple[str, tuple],
        connection.ops.datetime_trunc_sql("week", "first_enrolled_at", (), timezone.get_current_timezone_name()),
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
        result.append((_week_start(week), count, total))
    return result


def _week_start(week) -> str:
    """The day a week truncated in the site's zone starts on. The database hands the truncation back as that zone's
    wall-clock time, without a zone (PostgreSQL's ``timestamp``, SQLite's text): its date is the label, as it is. Read
    as UTC and moved to the site's zone, it would fall on the day before west of UTC."""
    if not week:
        return ""
    if isinstance(week, str):
        week = parse_datetime(week) or parse_date(week)
    if isinstance(week, datetime) and timezone.is_aware(week):
        week = timezone.localtime(week)
    return (week.date() if isinstance(week, datetime) else week).isoformat()


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
    since = timezone.now() - timedelta(weeks=weeks)
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
