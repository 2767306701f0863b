"""Big exports are written in the background into Django's storage, show their progress, and are downloaded once, by
the auditor who asked, before they expire; asking and downloading are both audited (AC-06)."""

import csv
import io
import re
from datetime import timedelta

import openpyxl
import pytest
from django.test import Client
from django.utils import timezone
from freezegun import freeze_time

from identity.models import AuditEvent, User
from reports import selectors
from reports.models import ExportJob
from reports.selectors import EnrollmentFilters
from testsupport import wait_for

CSV_URL = "/admin/reports/enrollment/export.csv"
XLSX_URL = "/admin/reports/enrollment/export.xlsx"


@pytest.fixture
def storage(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.REPORTS_BACKGROUND_EXPORT_ROWS = 2
    return tmp_path / "media"


def job_of(response) -> ExportJob:
    assert response.status_code == 302, response
    job_id = re.fullmatch(r"/admin/reports/exports/([0-9a-f-]+)/", response["Location"]).group(1)
    return ExportJob.objects.get(pk=job_id)


def download(client, job):
    return client.post(f"/admin/reports/exports/{job.pk}/download")


@pytest.mark.django_db
def test_ac06_a_big_export_runs_in_process_without_a_worker_and_downloads_once(
    auditor_client, auditor, population, storage, django_capture_on_commit_callbacks
):
    expected = selectors.enrollment_totals(EnrollmentFilters(department="Cardiology")).people
    assert expected > 2
    with django_capture_on_commit_callbacks(execute=True):
        job = job_of(auditor_client.post(CSV_URL, {"department": "Cardiology"}))

    job.refresh_from_db()
    assert (job.status, job.rows_written, job.rows_expected) == ("done", expected, expected)
    asked = AuditEvent.objects.get(action="report.exported")
    assert asked.actor == auditor and asked.details["job"] == str(job.pk) and asked.details["rows"] == expected
    page = auditor_client.get(f"/admin/reports/exports/{job.pk}/").content.decode()
    assert f"Ready: {expected} rows" in page

    response = download(auditor_client, job)
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    header, *rows = list(csv.reader(io.StringIO(body)))
    assert len(rows) == expected and {row[2] for row in rows} == {"Cardiology"}
    downloaded = AuditEvent.objects.get(action="report.export_downloaded")
    assert downloaded.actor == auditor and downloaded.details["rows"] == expected

    again = download(auditor_client, job)
    assert again.status_code == 302
    assert "downloaded already" in auditor_client.get(again["Location"]).content.decode()
    assert AuditEvent.objects.filter(action="report.export_downloaded").count() == 1


@pytest.mark.django_db
def test_ac03_the_link_is_refused_to_another_auditor_and_expires(
    auditor_client, population, storage, make_user, enroll, sign_in, settings, django_capture_on_commit_callbacks
):
    from django.contrib.auth.models import Group

    settings.REPORTS_EXPORT_LINK_SECONDS = 60
    with django_capture_on_commit_callbacks(execute=True):
        job = job_of(auditor_client.post(XLSX_URL, {}))
    other = make_user("auditor2", is_staff=True)
    other.groups.add(Group.objects.get(name="Auditor"))
    enroll(other)
    stranger = Client()
    sign_in(stranger, other)
    assert stranger.get(f"/admin/reports/exports/{job.pk}/").status_code == 404
    assert download(stranger, job).status_code == 404

    with freeze_time(timezone.now() + timedelta(seconds=61)):
        expired = download(auditor_client, job)
        assert expired.status_code == 302
        assert "expired" in auditor_client.get(expired["Location"]).content.decode()
    assert not AuditEvent.objects.filter(action="report.export_downloaded").exists()


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_big_export_is_written_by_a_real_worker_with_progress(
    client, superuser, sign_in, start_worker, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.REPORTS_BACKGROUND_EXPORT_ROWS = 100
    User.objects.bulk_create(
        [User(username=f"bulk{n:05d}", department="Bulk", email=f"b{n}@example.edu") for n in range(4500)]
    )
    start_worker(MEDIA_ROOT=settings.MEDIA_ROOT)
    sign_in(client, superuser)

    job = job_of(client.post(XLSX_URL, {"department": "Bulk"}))
    seen = []

    def finished():
        job.refresh_from_db()
        seen.append(job.rows_written)
        return job.status in ("done", "failed")

    wait_for(finished, timeout=120, interval=0.05)
    assert job.status == "done" and job.rows_expected == job.rows_written == 4500
    assert seen == sorted(seen)  # progress only advances
    assert "Ready: 4500 rows" in client.get(f"/admin/reports/exports/{job.pk}/").content.decode()

    response = download(client, job)
    sheet = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content)), read_only=True).active
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    assert len(rows) == 4500 and rows[0][0] == "bulk00000"
    assert download(client, job).status_code == 302  # once only


@pytest.mark.django_db
def test_ac06_a_download_whose_file_cannot_be_opened_is_not_spent(
    auditor_client, population, storage, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        job = job_of(auditor_client.post(CSV_URL, {}))
    job.refresh_from_db()
    (storage / job.file_name).rename(storage / "elsewhere")

    refused = download(auditor_client, job)
    assert refused.status_code == 302
    assert "could not be read" in auditor_client.get(refused["Location"]).content.decode()
    job.refresh_from_db()
    assert job.downloaded_at is None
    assert not AuditEvent.objects.filter(action="report.export_downloaded").exists()

    (storage / "elsewhere").rename(storage / job.file_name)
    assert download(auditor_client, job).status_code == 200
    assert AuditEvent.objects.filter(action="report.export_downloaded").count() == 1


def test_a_background_export_has_a_time_limit_of_its_own(settings):
    from reports.tasks import write_export_file

    assert write_export_file.soft_time_limit == settings.REPORTS_EXPORT_TIME_LIMIT
    assert write_export_file.time_limit == settings.REPORTS_EXPORT_TIME_LIMIT + 60
    assert write_export_file.soft_time_limit > settings.OUTBOX_SEND_TIME_LIMIT_SECONDS


def _page(client, job) -> str:
    return client.get(f"/admin/reports/exports/{job.pk}/").content.decode().replace("&#x27;", "'")


@pytest.mark.django_db
def test_an_export_stopped_at_its_time_limit_is_failed_with_a_sentence(
    auditor_client, population, storage, monkeypatch, django_capture_on_commit_callbacks
):
    from celery.exceptions import SoftTimeLimitExceeded

    def stopped(*args, **kwargs):  # what the worker raises in the task when the soft limit passes
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr("reports.services.write_xlsx", stopped)
    with django_capture_on_commit_callbacks(execute=True):
        job = job_of(auditor_client.post(XLSX_URL, {}))
    job.refresh_from_db()
    assert job.status == "failed" and job.finished_at is not None
    assert "took longer than a background export may take" in _page(auditor_client, job)


@pytest.mark.django_db
def test_an_export_that_fails_while_writing_is_failed_with_a_sentence(
    auditor_client, population, storage, monkeypatch, django_capture_on_commit_callbacks
):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("reports.services.write_xlsx", broken)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            job = job_of(auditor_client.post(XLSX_URL, {}))
    except OSError:  # raised again for the worker's log (in-process here)
        job = ExportJob.objects.get()
    job.refresh_from_db()
    assert job.status == "failed" and job.finished_at is not None
    assert "The worker could not write the file" in _page(auditor_client, job)


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_an_export_asked_for_with_the_worker_s_queue_down_is_failed_with_a_sentence_not_a_500(
    auditor_client, population, storage
):
    from config.celery import app
    from devices.tests.test_phone_worker import free_port, use_broker

    previous = app.conf.broker_url
    use_broker(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there: Redis is down
    app.conf.task_always_eager = False  # the autouse fixture sets it back
    try:
        response = auditor_client.post(XLSX_URL, {})
    finally:
        use_broker(previous)
    job = job_of(response)
    assert job.status == "failed"
    assert "The worker's queue could not be reached, so it was never started" in _page(auditor_client, job)
    assert AuditEvent.objects.filter(action="report.exported").count() == 1  # the request stays audited


@pytest.mark.django_db
def test_the_hourly_clean_up_fails_exports_no_worker_will_finish(auditor, settings):
    from reports.tasks import erase_expired_exports

    now = timezone.now()
    made = {
        name: ExportJob.objects.create(requested_by=auditor, report="enrollment", file_format="xlsx", status=status)
        for name, status in [
            ("lost", "running"),
            ("writing", "running"),
            ("never", "queued"),
            ("waiting", "queued"),
            ("from_before", "running"),  # running since before starts were recorded: no started_at
        ]
    }
    limit = settings.REPORTS_EXPORT_TIME_LIMIT
    ExportJob.objects.filter(pk=made["lost"].pk).update(started_at=now - timedelta(seconds=limit + 180))
    ExportJob.objects.filter(pk=made["writing"].pk).update(started_at=now - timedelta(seconds=limit))
    ExportJob.objects.filter(pk=made["never"].pk).update(
        created_at=now - timedelta(seconds=settings.REPORTS_EXPORT_LINK_SECONDS + 60)
    )
    ExportJob.objects.filter(pk=made["from_before"].pk).update(
        started_at=None, created_at=now - timedelta(seconds=limit + 180)
    )
    erase_expired_exports()
    statuses = {name: ExportJob.objects.get(pk=job.pk) for name, job in made.items()}
    assert {name: job.status for name, job in statuses.items()} == {
        "lost": "failed",
        "writing": "running",
        "never": "failed",
        "waiting": "queued",
        "from_before": "failed",
    }
    assert statuses["lost"].error_text == "The worker writing it stopped before it finished."
    assert statuses["never"].error_text == "No worker started writing it."
