"""The enrollment CSV is written by PostgreSQL (COPY) with the cells Python would write, row by row: one file whoever
formats it (AC-05: masked, neutralized)."""

import csv
import io

import pytest
from django.utils import timezone

from reports import selectors
from reports.exports import copy_csv_chunks, csv_chunks
from reports.registry import REPORTS, csv_file
from reports.selectors import EnrollmentFilters

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]  # COPY is PostgreSQL's

ENROLLMENT = REPORTS["enrollment"]

# Names and departments as a directory may hold them: formulas, separators, quotes, line breaks, other scripts, phone
# numbers in several formats, the marks PostgreSQL uses to hand a cell over to Python.
AWKWARD = [
    ("Lab;=1+1, -2+3", "Ann", "Lee"),
    ('Say "hi", then -1', "@bo", 'O"Brien'),
    ("", "-Cy", "Tab\there"),
    ("Two\nlines\r\nthree", "Dee", "Line\rbreak"),
    ("Zoë's lab", "Zoë", "Müller"),
    ("Desk 617.555.0143", "Pat (617) 555-0142", "x"),
    ("Call +1 617 555 0144", "Full", "６１７ ５５５ ０１４２"),
    ("=1+2;+3", "+4", "; =5"),
    ("Marks \x1e\x1f here", "A\x1eB", "C\x1fD"),
    ("Room 12, building 3", "Rows 1234567", "INC0012345"),
    ("   ", " -lead", "trail- "),
    ("\t=cmd", "\r+1", "a,\t-b"),
    (",=x;@y", "-", "="),
    ("'=already", "\u00a0=nbsp", "x,\u00a0=nbsp"),
    ("Ω; +Ω", "Łódź", "李 ,-3"),
    ("Networks 10.80.120.0/24", "INC 0012345678", "10.80.121.0/24"),
]


@pytest.fixture
def awkward_people(population, make_user):
    for n, (department, first_name, last_name) in enumerate(AWKWARD):
        make_user(f"awk{n}", department=department, first_name=first_name, last_name=last_name)
    make_user("+16175550199", department="Identifiers stay as they are")


def read(chunks) -> tuple[bytes, list[list[str]]]:
    body = b"".join(chunks)
    return body, list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))


@pytest.mark.parametrize("zone", ["UTC", "America/New_York"])
def test_ac_05_postgresql_and_python_write_the_same_cells_on_every_row(awkward_people, zone):
    with timezone.override(zone):
        by_copy, copied = read(copy_csv_chunks(ENROLLMENT.columns, *selectors.enrollment_sql(EnrollmentFilters())))
        by_python, written = read(csv_chunks(ENROLLMENT.columns, selectors.enrollment_rows(EnrollmentFilters())))

    assert len(copied) == selectors.enrollment_totals(EnrollmentFilters()).people + 1 > 20
    for row_by_copy, row_by_python in zip(copied, written, strict=True):
        assert row_by_copy == row_by_python
    assert by_copy.startswith("\ufeff".encode()) and b"\r\n" not in by_copy.replace(b"\r\nthree", b"")
    # What the rules did, seen once: masked and neutralized by whichever wrote the cell.
    rows = {row[0]: row for row in copied}
    assert rows["awk5"][1:3] == ["Pat +1********42 x", "Desk +1********43"]
    assert rows["awk6"][1:3] == ["Full +1********42", "Call +1********44"]
    assert rows["awk7"][1:3] == ["'+4 ; '=5", "'=1+2;'+3"]
    assert rows["awk0"][2] == "Lab;'=1+1, '-2+3"
    assert rows["awk9"][1:3] == ["Rows 1234567 INC0012345", "Room 12, building 3"]
    assert rows["awk15"][1:3] == ["INC 0012345678 10.80.121.0/24", "Networks 10.80.120.0/24"]
    assert rows["'+16175550199"][2] == "Identifiers stay as they are"  # neutralized, never masked


def test_WA_04_postgresql_writes_the_passkey_cells_python_writes(population):
    filters = EnrollmentFilters(has_kind="passkey")
    _, copied = read(copy_csv_chunks(ENROLLMENT.columns, *selectors.enrollment_sql(filters)))
    _, written = read(csv_chunks(ENROLLMENT.columns, selectors.enrollment_rows(filters)))

    assert copied == written
    header, *rows = copied
    passkeys, strongest = header.index("Passkeys"), header.index("Strongest factor")
    assert [(row[0], row[passkeys], row[strongest]) for row in rows] == [
        ("hana", "1", "passkey_device_bound"),
        ("ivan", "1", "passkey_synced"),
    ]


def test_the_enrollment_export_is_written_by_copy_in_its_one_statement(
    auditor_client, awkward_people, assert_max_num_statements
):
    body, rows = read(csv_file(ENROLLMENT, EnrollmentFilters(department="Cardiology")))
    assert b"\r\n" not in body  # COPY's line ends: PostgreSQL wrote it
    assert sorted(row[0] for row in rows[1:]) == ["alice", "bob", "erin"]

    with assert_max_num_statements(1):
        assert len(b"".join(csv_file(ENROLLMENT, EnrollmentFilters()))) > 0

    response = auditor_client.post("/admin/reports/enrollment/export.csv", {"department": "Radiology"})
    assert b"\r\n" not in b"".join(response.streaming_content)
