"""Big exports, written in the background: queued here, written by a worker.

This sits above :mod:`reports.tasks` (it dispatches ``write_export_file``), which sits above :mod:`reports.services`
(the task calls ``write_export``), so that no two of them import each other.
"""

import logging

from django.db import transaction

from identity import metrics

from .models import ExportJob
from .services import NOT_QUEUED, fail_export, record_export
from .tasks import write_export_file

log = logging.getLogger(__name__)


def start_background_export(
    actor, *, report: str, file_format: str, form_data: dict, filters: dict, rows: int, ip: str | None = None
) -> ExportJob:
    """Queue an export to be written by a worker; audit it as exported (AC-06) and dispatch the task on commit.

    The caller must have checked that ``actor`` may read reports and that ``form_data`` is valid for ``report``.
    With Celery's embedded default (no Redis) the task runs in-process when the transaction commits. When the
    worker's queue cannot be reached the job is recorded failed, with a sentence its page shows.
    """
    with transaction.atomic():
        job = ExportJob.objects.create(
            requested_by=actor, report=report, file_format=file_format, form_data=form_data, rows_expected=rows
        )
        record_export(actor, report=report, file_format=file_format, filters=filters, rows=rows, ip=ip, job=job)

        def queue() -> None:
            try:
                write_export_file.delay(str(job.pk))
            except Exception as error:  # any broker failure: no task will come for this job
                log.warning("export %s could not be queued (%s)", job.pk, type(error).__name__)
                fail_export(job, NOT_QUEUED)

        transaction.on_commit(queue)
        metrics.count_on_commit(metrics.EXPORT_JOBS, report, file_format, "queued")
    return job
