"""Celery tasks: thin, id-only, idempotent. The work is in :mod:`campaigns.services`."""

from celery import shared_task
from django.db import transaction

from . import services
from .models import Campaign


@shared_task(ignore_result=True)
def refresh_campaign_members(campaign_id: int) -> None:
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is not None:
        services.refresh_members(campaign)


@shared_task(ignore_result=True)
def refresh_open_campaigns() -> None:
    # New hires, movers and leavers reach the cohort's rows here; the doors read the rule itself meanwhile.
    for campaign_id in Campaign.objects.filter(closed_at=None).values_list("pk", flat=True):
        refresh_campaign_members.delay(campaign_id)


def refresh_soon(campaign: Campaign) -> None:
    """Refresh the campaign's cohort rows once the caller's transaction commits (a created or changed campaign)."""
    transaction.on_commit(lambda: refresh_campaign_members.delay(campaign.pk))
