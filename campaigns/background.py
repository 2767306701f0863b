"""Work a person starts and a worker does: queued here, after the commit. Sits above :mod:`campaigns.tasks`, which
sits above the modules whose batches its tasks run, so that none of them imports another in a circle."""

from django.db import transaction

from identity import audit

from .models import Campaign
from .reminder_tasks import queue_nudges

NUDGES_STARTED = "campaign.nudges_started"


def start_nudges(campaign: Campaign, *, actor, ip: str | None = None) -> None:
    """Have the campaign nudge its people at risk (:mod:`campaigns.nudges`); the batches run in a worker.

    Audits ``campaign.nudges_started``. The caller must have checked that ``actor`` may run campaigns. Starting it
    again nudges only those not nudged yet (newly at risk, or joined since).
    """
    with transaction.atomic():
        audit.record(NUDGES_STARTED, actor=actor, ip=ip, details={"campaign": campaign.pk, "name": campaign.name})
        transaction.on_commit(lambda: queue_nudges.delay(campaign.pk, 0))
