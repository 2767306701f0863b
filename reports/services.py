"""The reports' state changes: exports are audited (AC-06); big ones are written in the background.

A background export is queued by :mod:`reports.background`, which dispatches :mod:`reports.tasks`, whose tasks call
the services here: this module imports neither.
"""

import json
import tempfile
import uuid
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from identity import audit, metrics
from identity.models import User

from .exports import counted, write_xlsx
from .models import ExportJob
from .registry import REPORTS, csv_file

EXPORTED = "report.exported"
DOWNLOADED = "report.export_downloaded"


def record_export(
    actor: User,
    *,
    report: str,
    file_format: str,
    filters: dict,
    rows: int,
    ip: str | None = None,
    job: ExportJob | None = None,
) -> audit.AuditEvent:
    """Audit that ``actor`` exported ``rows`` rows of ``report`` narrowed by ``filters``, as ``file_format``.

    Writes ``report.exported`` and nothing else (with the background job's id when there is one). The caller must
    have checked that ``actor`` may read reports, and calls this before the file leaves.
    """
    details = {"report": report, "format": file_format, "filters": filters, "rows": rows}
    if job is not None:
        details["job"] = str(job.pk)
    return audit.record(EXPORTED, actor=actor, ip=ip, details=details)


TOO_LONG = (
    "It took longer than a background export may take, so it was stopped; narrow the filters for a smaller file, or "
    "ask an administrator to allow exports more time."
)
NOT_WRITTEN = "The worker could not write the file; ask for it again, and tell an administrator if it fails again."
NOT_QUEUED = "The worker's queue could not be reached, so it was never started; ask for it again later."
STALE_RUNNING = "The worker writing it stopped before it finished."
STALE_QUEUED = "No worker started writing it."
FILTERS_INVALID = "Its filters are no longer valid."


def fail_export(job: ExportJob, reason: str) -> bool:
    """Record a queued or running export failed, with ``reason`` (a sentence the auditor reads on its page); return
    whether it was still queued or running. Audits nothing: no file was handed out."""
    return bool(
        ExportJob.objects.filter(pk=job.pk, status__in=[ExportJob.Status.QUEUED, ExportJob.Status.RUNNING]).update(
            status=ExportJob.Status.FAILED, finished_at=timezone.now(), error_text=reason
        )
    )


def write_export(job_id: uuid.UUID | str) -> ExportJob | None:
    """Write a queued export's file to the default storage, updating its progress; idempotent.

    Returns None when the job is gone or was taken already. Marks it ``failed``, with a sentence, when its filters no
    longer validate, when it is stopped at its time limit (``REPORTS_EXPORT_TIME_LIMIT``) and on any other error (which
    is raised again, for the worker's log). Audits nothing: the request was audited, and the download is.
    """
    taken = ExportJob.objects.filter(pk=job_id, status=ExportJob.Status.QUEUED)
    if not taken.update(status=ExportJob.Status.RUNNING, started_at=timezone.now()):
        return None
    job = ExportJob.objects.get(pk=job_id)
    try:
        job = _write_export(job)
    except SoftTimeLimitExceeded:
        fail_export(job, TOO_LONG)
        metrics.count(metrics.EXPORT_JOBS, job.report, job.file_format, "error")
        job.refresh_from_db()
        return job
    except BaseException:
        fail_export(job, NOT_WRITTEN)
        metrics.count(metrics.EXPORT_JOBS, job.report, job.file_format, "error")
        raise
    metrics.count(metrics.EXPORT_JOBS, job.report, job.file_format, job.status)
    return job


def fail_stale_exports() -> int:
    """Record failed the exports no worker will finish; return how many. Called by beat, hourly.

    A job still running past its hard time limit lost its worker (a process killed, a machine gone: a task taken again
    finds it running and leaves it); one still queued after ``REPORTS_EXPORT_LINK_SECONDS`` lost its task.
    """
    now = timezone.now()
    cutoff = now - timedelta(seconds=settings.REPORTS_EXPORT_TIME_LIMIT + 120)
    # A job that started before its start was recorded has none: its creation tells.
    running = ExportJob.objects.filter(
        Q(started_at__lt=cutoff) | Q(started_at=None, created_at__lt=cutoff), status=ExportJob.Status.RUNNING
    ).update(status=ExportJob.Status.FAILED, finished_at=now, error_text=STALE_RUNNING)
    queued = ExportJob.objects.filter(
        status=ExportJob.Status.QUEUED,
        created_at__lt=now - timedelta(seconds=settings.REPORTS_EXPORT_LINK_SECONDS),
    ).update(status=ExportJob.Status.FAILED, finished_at=now, error_text=STALE_QUEUED)
    return running + queued


def _write_export(job: ExportJob) -> ExportJob:
    report = REPORTS[job.report]
    form = report.form(job.form_data)
    if not form.is_valid():
        fail_export(job, FILTERS_INVALID)
        job.refresh_from_db()
        return job

    def progress(written: int) -> None:
        ExportJob.objects.filter(pk=job.pk).update(rows_written=written)

    with tempfile.TemporaryFile() as spool:
        if job.file_format == "csv":
            for chunk in csv_file(report, form.filters(), progress=progress):
                spool.write(chunk)
        else:
            rows = counted(report.rows(form.filters()), progress)
            write_xlsx(spool, report.columns, rows, sheet_name=report.title)
        spool.seek(0)
        name = default_storage.save(f"exports/{job.pk}.{job.file_format}", File(spool))
    now = timezone.now()
    job.refresh_from_db()
    job.status = ExportJob.Status.DONE
    job.file_name = name
    job.finished_at = now
    job.expires_at = now + timedelta(seconds=settings.REPORTS_EXPORT_LINK_SECONDS)
    job.save(update_fields=["status", "file_name", "finished_at", "expires_at"])
    return job


def take_export_download(job_id: uuid.UUID | str, *, actor: User, ip: str | None = None) -> ExportJob:
    """Hand a finished export to the auditor who asked for it, once, before it expires; audit the download (AC-06).

    Raises ``ExportJob.DoesNotExist`` for anyone else (as if there were no such export) and ``ValidationError`` when
    it is not ready, was downloaded already or has expired. Audits ``report.export_downloaded``.
    """
    with transaction.atomic():
        job = ExportJob.objects.select_for_update().get(pk=job_id, requested_by=actor)
        if job.status != ExportJob.Status.DONE:
            raise ValidationError("This export is not ready yet.", code="not_ready")
        if job.downloaded_at is not None:
            raise ValidationError("This export was downloaded already; ask for a new one.", code="used")
        assert job.expires_at is not None  # set with DONE (run_export)
        if job.expires_at <= timezone.now():
            raise ValidationError("This export's link has expired; ask for a new one.", code="expired")
        job.downloaded_at = timezone.now()
        job.save(update_fields=["downloaded_at"])
        audit.record(
            DOWNLOADED,
            actor=actor,
            ip=ip,
            details={"report": job.report, "format": job.file_format, "rows": job.rows_written, "job": str(job.pk)},
        )
    return job


def open_export_download(job_id: uuid.UUID | str, *, actor: User, ip: str | None = None) -> tuple[ExportJob, File]:
    """:func:`take_export_download`, then the file, open for reading, with the stored copy erased (AC-05).

    Returns ``(job, file)``; raises as :func:`take_export_download` does. The file is downloadable once, so nothing
    of its rows is kept once it has been handed over: the copy is unlinked as soon as it is open (the open handle
    stays readable on the file system storage). The download is spent only once the file is open: a file that is
    gone raises ``ValidationError`` and leaves the export as it was, not downloaded and not audited.
    """
    with transaction.atomic():
        job = take_export_download(job_id, actor=actor, ip=ip)
        try:
            handle = default_storage.open(job.file_name)
        except OSError:
            raise ValidationError(
                "This export's file could not be read, so it was not downloaded; ask for a new one.", code="missing"
            ) from None
    default_storage.delete(job.file_name)
    return job, handle


def erase_expired_exports() -> int:
    """Erase the stored files of exports whose link has expired unused; return how many. Called by beat.

    The jobs stay (their requests and downloads are in the audit log); only the files with people's rows go.
    """
    erased = 0
    for job in ExportJob.objects.filter(expires_at__lte=timezone.now()).exclude(file_name=""):
        if default_storage.exists(job.file_name):
            default_storage.delete(job.file_name)
        ExportJob.objects.filter(pk=job.pk).update(file_name="")
        erased += 1
    return erased


def queue_weekly_summary() -> int:
    """Email the week's headline numbers, a link to the dashboard and the audit chain's latest signed checkpoint to
    every active member of the Auditor group with an address, through the outbox. Returns how many were queued.

    Audits ``report.weekly_summary_sent`` with the count and the checkpoint's sequence (AC-11: the checkpoint leaves
    the database in the email). Called by beat; nothing for the caller to check.
    """
    from devices import outbox
    from identity.audit import make_checkpoint
    from identity.models import User

    from .access import AUDITOR_GROUP
    from .dashboard import headline

    summary = headline()
    checkpoint = make_checkpoint()
    recipients = User.objects.filter(groups__name=AUDITOR_GROUP, is_active=True).exclude(email="").distinct()
    subject = f"{settings.INSTITUTION_NAME}: two-factor enrollment, weekly summary"
    with transaction.atomic():
        sent = 0
        for auditor in recipients:
            body = outbox.render_text(
                "emails/weekly_auditor_summary.txt",
                {
                    **summary,
                    "user": auditor,
                    "checkpoint": json.dumps(checkpoint.as_dict(), sort_keys=True) if checkpoint else "",
                    "dashboard_url": f"{settings.SITE_URL}/admin/reports/dashboard/",
                    "institution": settings.INSTITUTION_NAME,
                },
            )
            outbox.queue_email(
                user=auditor,
                to=auditor.email,
                subject=subject,
                body=body,
                template="reports:weekly_summary",
                holds_secret=False,
            )
            sent += 1
        audit.record(
            "report.weekly_summary_sent",
            details={"recipients": sent, "checkpoint_sequence": checkpoint.sequence if checkpoint else None},
        )
    return sent
