"""A campaign's progress, read-only: enrolled and not, by department, over time (the burn-down), by factor strength,
the people at risk, and when the cohort will be done at the current pace.

A handful of grouped queries over the campaign's members, whatever their number: none per person.
"""

import math
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from django.db.models import Count, IntegerField, Max, Min, Q, Subquery, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from devices.models import WorkingRegistration
from devices.selectors import enrolled, working_registrations

from .models import Campaign
from .people import AT_RISK, at_risk_annotations
from .reminders import schedule
from .selectors import current_members

# Strongest working factor, strongest first (the view's ranks, as the reports name them).
STRENGTH_LABELS: dict[int, str] = {
    **{rank: rank.label for rank in sorted(WorkingRegistration.Strength, reverse=True)},
    0: "None (not enrolled)",
}
PACE_DAYS = 7  # the current pace: people enrolled a day over the last week


def _per_person(aggregate):
    """One aggregate over the member's working registrations, as a subquery (NULL when they have none)."""
    return Subquery(working_registrations().order_by().values("user_id").annotate(value=aggregate).values("value")[:1])


def _strongest():
    return Coalesce(_per_person(Max("strength")), Value(0), output_field=IntegerField())


def _first_enrolled():
    # The earliest activation among the devices that make them enrolled now.
    return _per_person(Min("activated_at"))


@dataclass
class Progress:
    campaign: Campaign
    people: int = 0
    enrolled: int = 0
    departments: list = field(default_factory=list)  # (department, people, enrolled, not enrolled, percent)
    strengths: list = field(default_factory=list)  # (label, people)
    at_risk: dict = field(default_factory=dict)
    burn_down: list = field(default_factory=list)  # (day, still to enroll that day)
    pace_per_day: float = 0.0
    projected_finish: date | None = None
    # (reminder days before the deadline, None for the welcome; people whose latest message was that one)
    reminders_sent: list = field(default_factory=list)

    @property
    def not_enrolled(self) -> int:
        return self.people - self.enrolled

    @property
    def enrolled_percent(self) -> float:
        return 100.0 * self.enrolled / self.people if self.people else 0.0

    @property
    def finishes_in_time(self) -> bool | None:
        if self.not_enrolled == 0:
            return True
        if self.projected_finish is None or self.campaign.deadline is None:
            return None
        return self.projected_finish <= timezone.localdate(self.campaign.deadline)


def campaign_progress(campaign: Campaign, *, now: datetime | None = None) -> Progress:
    now = now or timezone.now()
    members = current_members(campaign).filter(person__is_active=True)
    progress = Progress(campaign)
    by_department = (
        members.annotate(is_enrolled=enrolled())
        .values("person__department")
        .annotate(people=Count("pk"), enrolled=Count("pk", filter=Q(is_enrolled=True)))
        .order_by("person__department")
    )
    for row in by_department:
        people, done = row["people"], row["enrolled"]
        progress.people += people
        progress.enrolled += done
        percent = round(100 * done / people) if people else 0
        progress.departments.append((row["person__department"] or "(none)", people, done, people - done, percent))
    strengths = dict(
        members.annotate(strength=_strongest())
        .values("strength")
        .annotate(n=Count("pk"))
        .values_list("strength", "n")
        .order_by()
    )
    progress.strengths = [(label, strengths.get(value, 0)) for value, label in STRENGTH_LABELS.items()]
    counts = members.annotate(**at_risk_annotations()).aggregate(
        n_text_only=Count("pk", filter=Q(text_only=True)),
        n_single_device=Count("pk", filter=Q(is_enrolled=True, devices=1)),
        n_no_backup_codes=Count("pk", filter=Q(is_enrolled=True, backup_codes=False)),
        n_any=Count("pk", filter=AT_RISK),
    )
    flags = {name.removeprefix("n_"): count for name, count in counts.items()}
    flags["nudged"] = campaign.nudges.count()
    progress.at_risk = flags
    progress.burn_down, progress.pace_per_day = _burn_down(campaign, members, now)
    if progress.pace_per_day > 0 and progress.not_enrolled:
        progress.projected_finish = timezone.localdate(now) + timedelta(
            days=math.ceil(progress.not_enrolled / progress.pace_per_day)
        )
    progress.reminders_sent = _latest_messages(campaign, members)
    return progress


def _latest_messages(campaign: Campaign, members) -> list[tuple[int | None, int]]:
    """How many people had each point of the schedule (as it is now) as their latest message: a person's is the
    latest point at or before the time they were last reminded (the welcome for one reminded before any). One
    aggregate query."""
    points = schedule(campaign)
    counts = {}
    for index, (_, at) in enumerate(points):
        window = Q(last_reminded_at__isnull=False) if index == 0 else Q(last_reminded_at__gte=at)
        if index + 1 < len(points):
            window &= Q(last_reminded_at__lt=points[index + 1][1])
        counts[f"n{index}"] = Count("pk", filter=window)
    found = members.aggregate(**counts)
    return [(days, found[f"n{index}"]) for index, (days, _) in enumerate(points) if found[f"n{index}"]]


def _by_day(queryset, moment: str) -> dict:
    return dict(
        queryset.annotate(day=TruncDate(moment))
        .values("day")
        .annotate(n=Count("pk"))
        .values_list("day", "n")
        .order_by()
    )


def _burn_down(campaign: Campaign, members, now: datetime) -> tuple[list[tuple[str, int]], float]:
    """(day, people still to enroll at its end) from the start to today, a point a week once that is over a month,
    and the pace (people enrolled a day) over the last week.

    Two grouped queries: members by the day they joined, and by the day they first enrolled.
    """
    joined = _by_day(members, "added_at")
    done = _by_day(members.filter(enrolled()).annotate(first=_first_enrolled()), "first")
    start = timezone.localdate(campaign.starts_at)
    today = timezone.localdate(now)
    # Whatever happened before the start shows on the first day: the people in the cohort then, less those enrolled.
    remaining = sum(n for day, n in joined.items() if day < start)
    remaining -= sum(n for day, n in done.items() if day is not None and day < start)
    every = 7 if (today - start).days > 31 else 1
    points = []
    day = start
    while day <= today:
        remaining += joined.get(day, 0) - done.get(day, 0)
        if (day - start).days % every == 0 or day == today:
            points.append((day.isoformat(), max(remaining, 0)))
        day += timedelta(days=1)
    week_ago = today - timedelta(days=PACE_DAYS)
    recent = sum(n for day, n in done.items() if day is not None and week_ago < day <= today)
    return points, recent / PACE_DAYS
