"""The weekly summary email to each open campaign's owner, through the outbox."""

from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from devices import outbox
from identity import audit

from .models import Campaign
from .progress import campaign_progress
from .reminders import deadline_words

SUMMARY_SENT = "campaign.weekly_summary_sent"


def week_of(moment: datetime) -> date:
    """The Monday of ``moment``'s week, in the institution's time zone."""
    day = timezone.localdate(moment)
    return day - timedelta(days=day.weekday())


def queue_weekly_summaries(*, now: datetime | None = None) -> int:
    """Email each open campaign's owner (active, with an address) the campaign's progress and a link to its page,
    once a week: a campaign whose summary for this week went out already (``Campaign.summary_week``) is skipped, so
    a second beat run or a retry sends nothing again.

    Returns how many were queued. Sets ``summary_week`` and audits ``campaign.weekly_summary_sent`` per campaign, in
    the transaction that queues the email. Called by beat; nothing for the caller to check. A campaign without an
    owner, or whose owner cannot be mailed, is skipped.
    """
    week = week_of(now or timezone.now())
    queued = 0
    campaigns = (
        Campaign.objects.filter(closed_at__isnull=True, owner__is_active=True)
        .exclude(owner__email="")
        .exclude(summary_week=week)
    )
    for campaign in campaigns.select_related("owner"):
        assert campaign.owner is not None  # the query asked for an active owner
        progress = campaign_progress(campaign)
        body = outbox.render_text(
            "campaigns/emails/weekly_summary.txt",
            {
                "campaign": campaign,
                "deadline": deadline_words(campaign),
                "owner": campaign.owner,
                "progress": progress,
                "page_url": f"{settings.SITE_URL}{reverse('campaign_progress', args=[campaign.pk])}",
                "institution": settings.INSTITUTION_NAME,
            },
        )
        with transaction.atomic():
            # The claim: of two runs at once, the second waits for the first's row lock, then finds the week taken.
            claimed = Campaign.objects.filter(pk=campaign.pk).exclude(summary_week=week).update(summary_week=week)
            if not claimed:
                continue
            outbox.queue_email(
                user=campaign.owner,
                to=campaign.owner.email,
                subject=f"{campaign.name}: two-step sign-in, weekly progress",
                body=body,
                template="campaigns:weekly_summary",
                holds_secret=False,
            )
            audit.record(
                SUMMARY_SENT,
                subject=campaign.owner,
                details={"campaign": campaign.pk, "people": progress.people, "enrolled": progress.enrolled},
            )
        queued += 1
    return queued
