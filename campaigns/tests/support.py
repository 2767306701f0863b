"""Campaigns and their members for the reminder, nudge and progress tests."""

from datetime import time, timedelta
from zoneinfo import ZoneInfo

from django.utils import timezone

from campaigns.models import Campaign, Member


def running_campaign(*, starts_in=timedelta(days=-1), deadline_in=timedelta(days=10), **fields) -> Campaign:
    """A campaign running now, without quiet hours unless asked (the tests run at any hour)."""
    now = timezone.now()
    defaults = {
        "name": f"Campaign {Campaign.objects.count() + 1}",
        "cohort": Campaign.Cohort.EVERYONE,
        "starts_at": now + starts_in,
        "deadline": now + deadline_in if deadline_in is not None else None,
        "reminder_days": [14, 7, 3, 1],
        "time_zone": "America/New_York",
        "quiet_from": time(0, 0),
        "quiet_until": time(0, 0),
        "email_subject": "Set up two-step sign-in",
        "email_text": "Two-step sign-in protects your account and the patients' records.",
        "sms_text": "",
    }
    return Campaign.objects.create(**{**defaults, **fields})


def add_members(campaign: Campaign, people, *, added_at=None) -> list[Member]:
    added_at = added_at or campaign.starts_at
    return Member.objects.bulk_create(
        [Member(campaign=campaign, person=person, added_at=added_at) for person in people]
    )


def quiet_hours_far_from_now(time_zone: str = "America/New_York") -> dict:
    """Quiet hours of one minute, twelve hours from now in ``time_zone``: for a test that goes through the services
    (which refuse a start equal to the end), at any hour."""
    start = (timezone.now() + timedelta(hours=12)).astimezone(ZoneInfo(time_zone))
    return {
        "quiet_from": time(start.hour, start.minute),
        "quiet_until": (start + timedelta(minutes=1)).time().replace(second=0, microsecond=0),
    }
