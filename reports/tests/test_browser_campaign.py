"""A campaign's progress page in real Chromium, for an auditor: the numbers, the burn-down chart and its table, the
people still to enroll downloaded as CSV; axe-core on a desktop and a phone-sized screen."""

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from playwright.sync_api import expect

from campaigns import services as campaign_services
from campaigns.models import Campaign, CohortEntry
from campaigns.tests.support import running_campaign
from devices.tests.browser import DESKTOP, PHONE, Accessibility, chromium, horizontal_overflow, sign_in_with_app
from identity.models import AuditEvent

# Transactional, as the other browser tests: the live server's thread must see the data.
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser():
    with chromium() as browser:
        yield browser


def test_campaign_progress_in_chromium_with_axe(browser, live_server, make_user, enroll, password, tmp_path):
    auditor = make_user("audit9", is_staff=True)
    auditor.groups.add(Group.objects.get_or_create(name="Auditor")[0])
    device = enroll(auditor).app_device
    campaign = running_campaign(
        name="Clinical staff, spring",
        cohort=Campaign.Cohort.DEPARTMENTS,
        starts_in=timedelta(days=-3),
        deadline_in=timedelta(days=11),
    )
    CohortEntry.objects.bulk_create([CohortEntry(campaign=campaign, value=v) for v in ("Cardiology", "Radiology")])
    for n, department in enumerate(["Cardiology", "Cardiology", "Radiology"]):
        enroll(make_user(f"doc{n}", department=department))
    make_user("newcomer", department="Radiology")
    make_user("nurse1", department="Cardiology")
    campaign_services.refresh_members(campaign, now=campaign.starts_at)
    axe = Accessibility()

    context = browser.new_context(base_url=live_server.url, accept_downloads=True, **DESKTOP)
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto(f"/admin/reports/campaigns/{campaign.pk}/")
    sign_in_with_app(page, auditor, password, device)

    expect(page.get_by_role("heading", name="Campaign: Clinical staff, spring")).to_be_visible()
    expect(page.locator("#campaign-people")).to_have_text("5")
    expect(page.locator("#campaign-not-enrolled")).to_have_text("2")
    # Everyone enrolled single-device, with no backup codes: all three at risk.
    expect(page.locator("#risk-any")).to_have_text("3")
    burn_down = page.get_by_role("table", name="People still to enroll, by day")
    expect(burn_down.locator("tbody tr")).to_have_count(4)  # the start, two days, today
    expect(burn_down.locator("tbody tr").last.locator("td")).to_have_text("2")
    chart = page.locator("figure", has=page.get_by_role("img", name="People still to enroll, by day: chart"))
    expect(chart.locator("text.value")).to_have_text(["5", "5", "5", "2"])
    expect(page.get_by_role("table", name="Percent of the cohort enrolled, by department")).to_be_visible()
    page.locator("#content-main").screenshot(path=tmp_path / "campaign.png")
    axe.check(page, "campaign progress")

    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    header, *rows = list(csv.reader(io.StringIO(download.value.path().read_text(encoding="utf-8-sig"))))
    assert header[:2] == ["Campaign", "Institution ID"]
    assert sorted(row[1] for row in rows) == ["newcomer", "nurse1"]
    event = AuditEvent.objects.get(action="report.exported", actor=auditor)
    assert event.details["report"] == "campaign-people" and event.details["rows"] == 2

    phone = browser.new_context(base_url=live_server.url, storage_state=context.storage_state(), **PHONE).new_page()
    phone.goto(f"/admin/reports/campaigns/{campaign.pk}/")
    expect(phone.locator("#campaign-people")).to_have_text("5")
    phone.locator("#content-main").screenshot(path=tmp_path / "campaign-phone.png")
    axe.check(phone, "campaign progress on a phone")
    assert horizontal_overflow(phone) == 0
    axe.assert_clean()
