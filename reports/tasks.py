"""The reports' periodic work. Thin: each task calls one selector or service."""

import json
import logging

from celery import shared_task
from django.conf import settings

from identity.audit import make_checkpoint

from . import services

logger = logging.getLogger("reports.audit_checkpoint")


@shared_task
def export_audit_checkpoint() -> dict | None:
    """Beat: sign the audit chain's head and write it to the log, which leaves this database (AC-11).

    Keep these lines (log shipping, the weekly auditor email carries the latest too); ``verify_audit_log
    --checkpoints FILE`` checks the chain against them.
    """
    checkpoint = make_checkpoint()
    if checkpoint is None:
        return None
    logger.info("audit checkpoint %s", json.dumps(checkpoint.as_dict(), sort_keys=True))
    return checkpoint.as_dict()


@shared_task(
    acks_late=True,
    ignore_result=True,
    soft_time_limit=settings.REPORTS_EXPORT_TIME_LIMIT,
    time_limit=settings.REPORTS_EXPORT_TIME_LIMIT + 60,
)
def write_export_file(job_id: str) -> None:
    """Write one background export (by id); the service skips a job that is gone or taken, and records it failed
    when it is stopped at its time limit or anything goes wrong."""
    services.write_export(job_id)


@shared_task(ignore_result=True)
def send_weekly_summary() -> None:
    """Beat, weekly: the auditors' summary email, through the outbox."""
    services.queue_weekly_summary()


@shared_task(ignore_result=True)
def erase_expired_exports() -> None:
    """Beat, hourly: erase the files of background exports whose link expired unused (AC-05), and record failed the
    exports no worker will finish."""
    services.erase_expired_exports()
    services.fail_stale_exports()
