"""Reads over a campaign's cohort rows, shared by the reminders, the progress page and the exports."""

from django.db.models import QuerySet

from devices.selectors import enrolled

from .models import Campaign, Member


def members_not_enrolled(campaign: Campaign) -> QuerySet:
    """The campaign's members (as of the last refresh) who are active and have not enrolled."""
    return Member.objects.filter(campaign=campaign, person__is_active=True).exclude(enrolled())


def members_due(campaign: Campaign, step: int) -> QuerySet:
    """The members not enrolled who have not had ``step`` yet (``last_step < step``): the index on (campaign,
    last_step, person) gives the range, an anti-join on the registrations drops the enrolled. One query; iterate it
    with ``.iterator()`` or in id ranges, never all at once."""
    return members_not_enrolled(campaign).filter(last_step__lt=step)
