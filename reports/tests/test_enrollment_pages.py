"""The enrollment report in the staff admin and its CSV and XLSX exports: who may see them (AC-03), what the files
hold (AC-05) and that every export is audited (AC-06)."""

import csv
import html
import io
import re
from datetime import datetime

import openpyxl
import pytest
from django.contrib.auth.models import Group

from devices.models import AuthenticatorAppDevice, BackupCode, PhoneVerification
from devices.phone_numbers import mask_phone_numbers
from identity.models import AuditEvent
from reports import selectors
from reports.exports import neutralize, neutralize_for_csv
from reports.selectors import EnrollmentFilters
from testsupport import details_of

from .conftest import FORMULA_DEPARTMENT

pytestmark = pytest.mark.django_db

PAGE = "/admin/reports/enrollment/"
CSV_URL = "/admin/reports/enrollment/export.csv"
XLSX_URL = "/admin/reports/enrollment/export.xlsx"
HEADERS = [column.header for column in selectors.ENROLLMENT_COLUMNS]


def parse_csv(response) -> list[list[str]]:
    body = b"".join(response.streaming_content)
    assert body.startswith("\ufeff".encode())  # Excel reads UTF-8 only with the BOM
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def lands_on_sign_in(client, url: str) -> bool:
    chain = client.get(url, follow=True).redirect_chain
    return bool(chain) and chain[-1][0].startswith("/account/sign-in/")


def open_xlsx(response):
    return openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content))).active


# --- The page --------------------------------------------------------------------------------------------------


def test_auditor_sees_the_report_with_totals_for_the_filtered_set(auditor_client, population):
    response = auditor_client.get(PAGE, {"department": "Cardiology", "enrolled": "yes"})

    assert response.status_code == 200
    page = response.content.decode()
    expected = selectors.enrollment_totals(EnrollmentFilters(department="Cardiology", enrolled=True))
    assert expected.people == 3  # alice, bob, erin
    assert re.search(rf'id="total-people">{expected.people}<', page)
    assert re.search(rf'id="total-enrolled">{expected.enrolled} ', page)
    assert all(name in page for name in ("alice", "bob", "erin"))
    assert "carol" not in page and "frank" not in page
    # The filters are on screen, set as asked, and the export forms carry them.
    assert 'value="Cardiology" selected' in page
    assert '<input type="hidden" name="department" value="Cardiology">' in page


def test_WA_04_the_page_counts_passkeys_filters_by_them_and_tells_synced_from_device_bound(auditor_client, population):
    page = html.unescape(auditor_client.get(PAGE, {"has_kind": "passkey"}).content.decode())

    assert '<option value="passkey" selected>Passkeys</option>' in page
    assert re.search(r'id="total-people">2<', page)  # hana and ivan
    rows = re.search(r'<table id="result_list">.*?</table>', page, re.S).group(0)
    header = re.findall(r'<th scope="col"[^>]*>([^<]*)</th>', rows)
    assert header == HEADERS and "Passkeys" in header
    cells = [re.findall(r"<td>([^<]*)</td>", row) for row in re.findall(r"<tr><td>.*?</tr>", rows)]
    assert [(row[0], row[header.index("Passkeys")], row[header.index("Strongest factor")]) for row in cells] == [
        ("hana", "1", "Passkey, this device only"),
        ("ivan", "1", "Passkey, synced"),
    ]
    # The totals name the kind and count each way of holding a passkey apart.
    assert '<th scope="row">Passkeys</th><td>2</td>' in page
    assert '<th scope="row">Passkeys, this device only</th><td>1</td><td>0</td>' in page
    assert '<th scope="row">Passkeys, synced</th><td>1</td><td>0</td>' in page
    assert '<th scope="row">Security keys</th><td>0</td><td>0</td>' in page

    synced = html.unescape(auditor_client.get(PAGE, {"strongest_factor": "passkey_synced"}).content.decode())
    assert '<option value="passkey_synced" selected>Passkey, synced</option>' in synced
    assert re.search(r'id="total-people">1<', synced) and "<td>ivan</td>" in synced and "<td>hana</td>" not in synced


def test_a_bad_filter_gets_a_message_and_no_rows(auditor_client, population):
    response = auditor_client.get(PAGE, {"enrolled_from": "2026-05-01", "enrolled_to": "2026-04-01"})
    assert response.status_code == 400
    assert "must be on or before" in response.content.decode()
    assert "alice" not in response.content.decode()


def test_the_page_pages_through_many_people(auditor_client, make_user):
    for n in range(105):
        make_user(f"p{n:03d}")
    first = auditor_client.get(PAGE).content.decode()
    second = auditor_client.get(PAGE, {"page": 2}).content.decode()
    # auditor1, then p000 to p098 on the first page of a hundred; the rest on the second.
    assert "<td>p098</td>" in first and "<td>p099</td>" not in first and "Next page" in first
    assert "<td>p099</td>" in second and "<td>p104</td>" in second and "Previous page" in second
    assert "Next page" not in second


# --- Permissions (AC-03) ---------------------------------------------------------------------------------------


def test_ac03_superuser_reads_the_reports(client, superuser, sign_in, population):
    sign_in(client, superuser)
    assert client.get(PAGE).status_code == 200
    assert client.post(CSV_URL).status_code == 200


def test_ac03_help_desk_is_refused_the_reports_and_exports(client, staff_member, sign_in, population):
    sign_in(client, staff_member)
    assert client.get("/admin/").status_code == 200
    assert client.get(PAGE).status_code == 403
    assert client.post(CSV_URL).status_code == 403
    assert client.post(XLSX_URL).status_code == 403
    assert not AuditEvent.objects.filter(action="report.exported").exists()


def test_ac03_people_and_anonymous_are_refused(client, enrolled_user, sign_in, population):
    assert lands_on_sign_in(client, PAGE)
    assert client.post(CSV_URL).status_code == 302

    sign_in(client, enrolled_user)
    # Not staff: the admin refuses outright (sending a fully signed-in person to sign in again would loop).
    assert client.get(PAGE, follow=True).status_code == 403
    assert client.post(CSV_URL, follow=True).status_code == 403
    assert not AuditEvent.objects.filter(action="report.exported").exists()


def test_ac03_an_auditor_without_a_second_factor_in_this_session_is_sent_to_sign_in(client, auditor, population):
    client.force_login(auditor)
    assert lands_on_sign_in(client, PAGE)
    assert client.post(CSV_URL).status_code == 302
    assert not AuditEvent.objects.filter(action="report.exported").exists()


def test_ac03_auditors_hold_view_permissions_only_and_change_nothing(auditor_client, auditor, population):
    permissions = auditor.get_all_permissions()
    assert permissions and all(p.split(".")[1].startswith("view_") for p in permissions)

    person = population.alice
    change = f"/admin/identity/user/{person.pk}/change/"
    response = auditor_client.post(change, {"username": "x", "department": "Changed", "vpn_access": "revoked"})
    assert response.status_code == 403
    person.refresh_from_db()
    assert (person.department, person.vpn_access) == ("Cardiology", "approved")
    assert auditor_client.post(f"/admin/identity/user/{person.pk}/delete/", {"post": "yes"}).status_code == 403
    assert auditor_client.get("/admin/identity/user/add/").status_code == 403


def test_ac03_exports_are_posts(auditor_client, population):
    # A link on someone else's page must not make an audited export in the auditor's name.
    assert auditor_client.get(CSV_URL).status_code == 405
    assert not AuditEvent.objects.filter(action="report.exported").exists()


# --- The files (AC-05) ---------------------------------------------------------------------------------------


def test_ac05_csv_has_the_pages_rows_and_only_allowed_columns(auditor_client, population):
    response = auditor_client.post(CSV_URL, {"vpn_access": "approved"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    header, *rows = parse_csv(response)
    assert header == HEADERS
    expected = list(selectors.enrollment_rows(EnrollmentFilters(vpn_access="approved")))
    assert [row[0] for row in rows] == [row[0] for row in expected]
    totals = selectors.enrollment_totals(EnrollmentFilters(vpn_access="approved"))
    enrolled = HEADERS.index("Enrolled")
    assert len(rows) == totals.people and sum(row[enrolled] == "yes" for row in rows) == totals.enrolled
    keys = HEADERS.index("Security keys")
    assert sum(int(row[keys]) for row in rows) == totals.devices["security_key"]


def test_WA_04_the_files_count_passkeys_and_name_how_each_person_holds_theirs(auditor_client, population):
    header, *rows = parse_csv(auditor_client.post(CSV_URL, {"department": "Physics"}))
    sheet = open_xlsx(auditor_client.post(XLSX_URL, {"department": "Physics"}))

    expected = {"hana": ("1", "passkey_device_bound"), "ivan": ("1", "passkey_synced")}
    passkeys, strongest = header.index("Passkeys"), header.index("Strongest factor")
    assert {row[0]: (row[passkeys], row[strongest]) for row in rows} == expected
    cells = {row[0]: (str(row[passkeys]), row[strongest]) for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert cells == expected


def test_ac05_formula_cells_are_neutralized_in_both_files(auditor_client, population):
    header, *rows = parse_csv(auditor_client.post(CSV_URL, {"enrolled": "no"}))
    frank = next(row for row in rows if row[0] == "frank")
    assert frank[HEADERS.index("Department")] == "'" + FORMULA_DEPARTMENT
    assert frank[HEADERS.index("Name")] == "'+Frank Z"

    sheet = open_xlsx(auditor_client.post(XLSX_URL, {"enrolled": "no"}))
    cells = {row[0].value: row for row in sheet.iter_rows(min_row=2)}
    department = cells["frank"][HEADERS.index("Department")]
    assert department.data_type == "s" and department.value == "'" + FORMULA_DEPARTMENT
    assert not any(cell.data_type == "f" for row in sheet.iter_rows() for cell in row)


def test_ac05_a_spreadsheet_splitting_at_semicolons_finds_no_formula(auditor_client, make_user):
    make_user("semi", department="Lab;=1+1, -2+3")
    body = b"".join(auditor_client.post(CSV_URL, {}).streaming_content).decode("utf-8-sig")
    line = next(line for line in body.splitlines() if line.startswith("semi,"))
    # As Excel reads it where the list separator is ";" (or ","), ignoring our quotes.
    for part in re.split(r"[;,]", line):
        assert not part.strip('"').startswith(("=", "+", "-", "@")), part
    assert neutralize_for_csv("Lab;=1+1, -2+3") == "Lab;'=1+1, '-2+3"


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_ac05_every_formula_trigger_is_neutralized(start):
    assert neutralize(f"{start}1+1").startswith("'")
    assert neutralize("Cardiology") == "Cardiology"


def test_ac05_phone_numbers_in_text_are_masked():
    assert mask_phone_numbers("called +16175550177 twice") == "called +1********77 twice"


def test_ac05_xlsx_is_typed_frozen_and_filtered(auditor_client, population):
    sheet = open_xlsx(auditor_client.post(XLSX_URL, {}))

    assert [cell.value for cell in sheet[1]] == HEADERS
    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref.startswith("A1:")
    rows = {row[0].value: [cell.value for cell in row] for row in sheet.iter_rows(min_row=2)}
    assert len(rows) == selectors.enrollment_totals(EnrollmentFilters()).people
    alice = dict(zip(HEADERS, rows["alice"], strict=True))
    assert alice["Enrolled"] is True and alice["Locked"] is False
    assert alice["Mobile phones"] == 1 and alice["Backup codes left"] == 9
    assert isinstance(alice["First enrolled"], datetime)
    assert isinstance(alice["Last second-factor use"], datetime)
    assert dict(zip(HEADERS, rows["frank"], strict=True))["First enrolled"] is None


def test_ac05_no_secret_code_token_or_hash_in_any_export(auditor_client, population):
    csv_body = b"".join(auditor_client.post(CSV_URL, {}).streaming_content).decode("utf-8-sig")
    sheet = open_xlsx(auditor_client.post(XLSX_URL, {}))
    xlsx_text = "\n".join(str(cell.value) for row in sheet.iter_rows() for cell in row)
    secrets = [
        *AuthenticatorAppDevice.objects.exclude(encrypted_secret="").values_list("encrypted_secret", flat=True),
        *BackupCode.objects.values_list("code_hash", flat=True),
        *PhoneVerification.objects.values_list("code_hash", flat=True),
        *AuditEvent.objects.values_list("hash", flat=True),
    ]
    assert secrets
    for body in (csv_body, xlsx_text):
        assert not any(secret in body for secret in secrets)
        assert not re.search(r"\b[0-9a-f]{40,}\b", body)
        assert "+1617555" not in body


# --- Audited (AC-06) -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("url,file_format", [(CSV_URL, "csv"), (XLSX_URL, "xlsx")])
def test_ac06_every_export_is_audited_with_who_what_filters_and_rows(
    auditor_client, auditor, population, url, file_format
):
    before = AuditEvent.objects.count()

    response = auditor_client.post(url, {"department": "Radiology", "enrolled": "yes"})
    b"".join(response.streaming_content)

    (event,) = AuditEvent.objects.order_by("sequence")[before:]
    assert event.action == "report.exported"
    assert event.actor == auditor
    assert details_of(event) == {
        "report": "enrollment",
        "format": file_format,
        "filters": {"department": "Radiology", "enrolled": True},
        "rows": 2,  # carol and grace
    }


def test_ac06_a_refused_export_is_not_audited_as_one(auditor_client, population):
    response = auditor_client.post(CSV_URL, {"enrolled_from": "not a date"})
    assert response.status_code == 400
    assert not AuditEvent.objects.filter(action="report.exported").exists()


def test_auditor_group_exists_with_view_permissions():
    assert Group.objects.filter(name="Auditor").exists()
