"""A background export's file holds people's rows: it is erased once downloaded, or once its link expires (AC-05)."""

import re
from datetime import timedelta

import pytest
from django.utils import timezone
from freezegun import freeze_time

from reports.models import ExportJob
from reports.services import erase_expired_exports

CSV_URL = "/admin/reports/enrollment/export.csv"


@pytest.fixture
def storage(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.REPORTS_BACKGROUND_EXPORT_ROWS = 2
    settings.REPORTS_EXPORT_LINK_SECONDS = 60
    return tmp_path / "media"


def stored_files(storage) -> list:
    return [path for path in storage.rglob("*") if path.is_file()]


def export(auditor_client, django_capture_on_commit_callbacks) -> ExportJob:
    with django_capture_on_commit_callbacks(execute=True):
        response = auditor_client.post(CSV_URL, {})
    job_id = re.fullmatch(r"/admin/reports/exports/([0-9a-f-]+)/", response["Location"]).group(1)
    return ExportJob.objects.get(pk=job_id, status=ExportJob.Status.DONE)


@pytest.mark.django_db
def test_ac05_a_downloaded_export_leaves_no_file_behind(
    auditor_client, population, storage, django_capture_on_commit_callbacks
):
    job = export(auditor_client, django_capture_on_commit_callbacks)
    assert len(stored_files(storage)) == 1
    response = auditor_client.post(f"/admin/reports/exports/{job.pk}/download")
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    assert body.count("\n") == job.rows_written + 1  # the whole file still reaches the auditor
    assert stored_files(storage) == []


@pytest.mark.django_db
def test_ac05_an_export_whose_link_expired_unused_is_erased(
    auditor_client, population, storage, django_capture_on_commit_callbacks
):
    job = export(auditor_client, django_capture_on_commit_callbacks)
    assert erase_expired_exports() == 0
    assert len(stored_files(storage)) == 1
    with freeze_time(timezone.now() + timedelta(seconds=61)):
        assert erase_expired_exports() == 1
        assert erase_expired_exports() == 0
    assert stored_files(storage) == []
    job.refresh_from_db()
    assert job.file_name == ""
