"""An auditor in real Chromium: signs in to the admin with a second factor, opens the dashboard (axe-core), filters the
enrollment report, and downloads its CSV and XLSX, which are read back with csv and openpyxl."""

import csv
import io

import openpyxl
import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from devices.models import Registration
from devices.tests.browser import DESKTOP, PHONE, Accessibility, chromium, horizontal_overflow, sign_in_with_app
from identity.models import AuditEvent, User
from reports import selectors
from reports.selectors import EnrollmentFilters

from .conftest import add_security_key

# Transactional: the live server's thread must see the data.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser():
    with chromium() as browser:
        yield browser


def test_ac05_auditor_in_chromium_dashboard_filter_and_downloads(
    browser, live_server, make_user, enroll, password, tmp_path
):
    auditor = make_user("audit9", is_staff=True, first_name="Aud", last_name="Itor")
    auditor.groups.add(Group.objects.get(name="Auditor"))
    device = enroll(auditor).app_device
    for n, department in enumerate(["Cardiology", "Cardiology", "Radiology"]):
        enroll(make_user(f"doc{n}", department=department, first_name=f"Doc{n}"))
    make_user("newcomer", department="Cardiology")
    # A passkey beside doc2's phone, synced (WA-04): the pages then show it counted, and axe reads them so.
    add_security_key(User.objects.get(username="doc2"), Registration.Kind.PASSKEY, synced=True)
    axe = Accessibility()

    context = browser.new_context(base_url=live_server.url, accept_downloads=True, **DESKTOP)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto("/admin/reports/dashboard/")
    # The admin sends an unverified visitor to our own sign-in, password first, then the second factor.
    expect(page.get_by_label("Institution ID")).to_be_visible()
    sign_in_with_app(page, auditor, password, device)

    expect(page.get_by_role("heading", name="Enrollment dashboard")).to_be_visible()
    totals = selectors.enrollment_totals(EnrollmentFilters())
    expect(page.locator("#dash-people")).to_have_text(str(totals.people))
    expect(page.get_by_role("table", name="Percent enrolled, by department")).to_be_visible()
    expect(page.get_by_role("img", name="Percent enrolled, by department: chart")).to_be_visible()
    # The chart reads without its table: each bar's department and value, and a scale.
    chart = page.locator("figure", has=page.get_by_role("img", name="Percent enrolled, by department: chart"))
    expect(chart.locator("text.label")).to_have_text(["(none)", "Cardiology", "Radiology"])
    expect(chart.locator("text.value")).to_have_text(["100%", "67%", "100%"])  # the auditor has no department
    expect(chart.locator("text.tick")).to_have_text(["0%", "25%", "50%", "75%", "100%"])
    expect(chart.locator("text.axis-title")).to_have_text("Percent of the department enrolled")
    kinds = page.get_by_role("table", name="Devices in use, by kind")
    expect(kinds.get_by_role("row", name="Passkeys 1", exact=True)).to_be_visible()
    assurance = page.get_by_role("table", name="People and staff by their strongest factor")
    expect(assurance.get_by_role("row", name="Passkeys, synced 1 0", exact=True)).to_be_visible()
    page.locator("#content-main").screenshot(path=tmp_path / "dashboard.png")
    axe.check(page, "dashboard")

    page.get_by_role("link", name="Enrollment report, with filters and exports").click()
    page.get_by_label("Department").select_option("Cardiology")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#total-people")).to_have_text("3")
    expect(page.get_by_role("cell", name="newcomer", exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name="doc2", exact=True)).to_have_count(0)
    axe.check(page, "enrollment report, filtered")

    with page.expect_download() as csv_download:
        page.get_by_role("button", name="Download CSV").click()
    assert csv_download.value.suggested_filename.endswith(".csv")
    body = csv_download.value.path().read_text(encoding="utf-8-sig")
    header, *rows = list(csv.reader(io.StringIO(body)))
    assert header[0] == "Institution ID"
    assert sorted(row[0] for row in rows) == ["doc0", "doc1", "newcomer"]

    with page.expect_download() as xlsx_download:
        page.get_by_role("button", name="Download Excel (XLSX)").click()
    assert xlsx_download.value.suggested_filename.endswith(".xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx_download.value.path().read_bytes())).active
    assert sorted(row[0] for row in sheet.iter_rows(min_row=2, values_only=True)) == ["doc0", "doc1", "newcomer"]
    assert sheet.freeze_panes == "A2"

    exports = AuditEvent.objects.filter(action="report.exported", actor=auditor).order_by("sequence")
    assert [(e.details["format"], e.details["filters"], e.details["rows"]) for e in exports] == [
        ("csv", {"department": "Cardiology"}, 3),
        ("xlsx", {"department": "Cardiology"}, 3),
    ]

    # The same pages on a phone screen: readable, nothing but the wide table scrolls sideways.
    phone = browser.new_context(base_url=live_server.url, storage_state=context.storage_state(), **PHONE).new_page()
    phone.goto("/admin/reports/dashboard/")
    expect(phone.get_by_role("heading", name="Enrollment dashboard")).to_be_visible()
    phone.locator("#content-main").screenshot(path=tmp_path / "dashboard-phone.png")
    axe.check(phone, "dashboard on a phone")
    assert horizontal_overflow(phone) == 0
    axe.assert_clean()
