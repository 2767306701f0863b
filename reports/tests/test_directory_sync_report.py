"""Directory sync runs in the auditors' reports: the runs with their counts and decisions, filtered and exported."""

import csv
import io

import pytest

from identity.directory.models import DirectorySyncRun
from reports import selectors

pytestmark = pytest.mark.django_db

PAGE = "/admin/reports/directory-sync/"


@pytest.fixture
def runs(superuser):
    held = DirectorySyncRun.objects.create(
        trigger="beat",
        status="discarded",
        deactivated=600,
        unchanged=10,
        read=610,
        would_deactivate=[{"id": 1, "username": "x", "reason": "gone"}],
        decided_by=superuser,
    )
    applied = DirectorySyncRun.objects.create(
        trigger="user", triggered_by=superuser, status="applied", created=3, updated=2, read=9
    )
    return held, applied


def test_auditors_read_the_runs(auditor_client, runs, superuser):
    page = auditor_client.get(PAGE).content.decode()
    assert "Directory sync runs" in page and "discarded" in page and "applied" in page
    page = auditor_client.get(PAGE, {"status": "discarded"}).content.decode()
    assert "Runs 1 to 1 of 1" in page
    response = auditor_client.post(PAGE + "export.csv", {"status": "applied"})
    header, *rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert header == [column.header for column in selectors.SYNC_COLUMNS]
    row = dict(zip(header, rows[0], strict=True))
    assert (row["Status"], row["Who"], row["Created"], row["Updated"]) == ("applied", superuser.username, "3", "2")
    assert len(rows) == 1


def test_the_desk_does_not_read_reports(client, staff_member, sign_in):
    sign_in(client, staff_member)
    assert client.get(PAGE).status_code == 403


def test_ac05_numeric_institution_ids_reach_the_export_unmasked(auditor_client, make_user):
    person = make_user("+15551234567")
    DirectorySyncRun.objects.create(
        trigger="user", triggered_by=person, decided_by=person, only_person=person.username, status="applied"
    )
    response = auditor_client.post(PAGE + "export.csv", {"status": "applied"})
    header, *rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    row = dict(zip(header, rows[0], strict=True))
    cells = (row["Person"], row["Who"], row["Applied or discarded by"])
    assert all(cell.lstrip("'") == "+15551234567" for cell in cells), cells  # a leading ' only neutralizes a formula
