"""Reads over a campaign's cohort rows, shared by the reminders, the progress page and the exports."""

from datetime import datetime

from django.db.models import Q, QuerySet

from devices.selectors import enrolled

from .models import Campaign, Member


def members_not_enrolled(campaign: Campaign) -> QuerySet:
    """The campaign's members (as of the last refresh, those who left the cohort left out) who are active and have not
    enrolled."""
    return current_members(campaign).filter(person__is_active=True).exclude(enrolled())


def current_members(campaign: Campaign) -> QuerySet:
    """The campaign's member rows of the people in its cohort as of the last refresh (not those who left it)."""
    return Member.objects.filter(campaign=campaign, left_at__isnull=True)


def members_due(campaign: Campaign, point: datetime) -> QuerySet:
    """The members not enrolled who have had no message since ``point`` of the schedule (``last_reminded_at`` before
    it, or none): the index on (campaign, last_reminded_at, person) gives the range, an anti-join on the
    registrations drops the enrolled. One query; iterate it with ``.iterator()`` or in id ranges, never all at once."""
    return members_not_enrolled(campaign).filter(Q(last_reminded_at__isnull=True) | Q(last_reminded_at__lt=point))
