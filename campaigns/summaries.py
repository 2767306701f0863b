"""The weekly summary email to each open campaign's owner, through the outbox."""

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from devices import outbox
from identity import audit

from .models import Campaign
from .progress import campaign_progress

SUMMARY_SENT = "campaign.weekly_summary_sent"


def queue_weekly_summaries() -> int:
    """Email each open campaign's owner (active, with an address) the campaign's progress and a link to its page.

    Returns how many were queued. Audits ``campaign.weekly_summary_sent`` per campaign. Called by beat; nothing for the
    caller to check. A campaign without an owner, or whose owner cannot be mailed, is skipped.
    """
    queued = 0
    campaigns = Campaign.objects.filter(closed_at__isnull=True, owner__is_active=True).exclude(owner__email="")
    for campaign in campaigns.select_related("owner"):
        assert campaign.owner is not None  # the query asked for an active owner
        progress = campaign_progress(campaign)
        body = outbox.render_text(
            "campaigns/emails/weekly_summary.txt",
            {
                "campaign": campaign,
                "owner": campaign.owner,
                "progress": progress,
                "page_url": f"{settings.SITE_URL}{reverse('campaign_progress', args=[campaign.pk])}",
                "institution": settings.INSTITUTION_NAME,
            },
        )
        with transaction.atomic():
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
