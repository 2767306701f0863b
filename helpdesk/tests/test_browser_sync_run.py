"""A directory sync held by the mass-deactivation guard (DIR-03), in real Chromium, as the superuser who decides it.

The scheduled sync finds four people gone from the directory, more than DIRECTORY_MAX_DEACTIVATIONS allows, and
holds. The superuser finds the run from the admin home page, reads who would be deactivated and why, in words, and
discards it: nobody changes. The next run holds again; another superuser applies it on their phone: the four are
deactivated, and both decisions are in the audit log. axe-core checks every page on the way.
"""

import pytest
from playwright.sync_api import expect

from devices.tests.browser import PHONE, WITH_MODERATE, Accessibility, horizontal_overflow
from identity.directory import sync
from identity.directory.models import DirectorySyncRun
from identity.directory.tests.test_sync import four_leave  # noqa: F401 (the fixture)
from identity.directory.tests.test_sync_admin import held_run_of
from identity.models import AuditEvent, User

from .test_browser_desk import _agent_in_admin

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

Status = DirectorySyncRun.Status


def _held_run_page(page, axe, name):
    """From the admin home page to the one held run, through the list of runs filtered to held ones."""
    page.goto("/admin/")
    page.get_by_role("link", name="Directory sync runs").click()
    page.get_by_role("link", name="Held: waiting for a superuser").click()
    axe.check(page, f"{name}: held runs")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    rows.first.locator("th a").click()
    expect(page.get_by_role("heading", name="Held: 4 people would be deactivated")).to_be_visible()


def _expect_the_four_in_words(page, four):
    held = page.get_by_role("region", name="Held: 4 people would be deactivated")
    table = held.get_by_role("table")
    for uid in four:
        # By name and ID, with their department: who they are, not only a key.
        person = page.get_by_role("link", name=f"{uid.capitalize()} Tester (ID {uid})", exact=True)
        expect(table.get_by_role("row").filter(has=person)).to_contain_text("Medicine")
    gone = table.get_by_role("row").filter(has_text="not found under the synced bases and groups")
    disabled = table.get_by_role("row").filter(has_text="disabled in the directory")
    expect(gone).to_have_count(2)
    expect(disabled).to_have_count(2)
    expect(held.get_by_text("more than DIRECTORY_MAX_DEACTIVATIONS (3)")).to_be_visible()
    expect(held.get_by_text("Nobody was changed.")).to_be_visible()


def test_dir_03_a_superuser_reads_a_held_sync_discards_it_then_applies_the_next_on_a_phone(
    browser,
    site,
    superuser,
    second_superuser,
    four_leave,  # noqa: F811 (the fixture)
    password,
    settings,
):
    settings.DIRECTORY_MAX_DEACTIVATIONS = 3
    held = sync.sync_directory()
    assert held.status == Status.HELD
    leaving = User.objects.filter(username__in=four_leave)
    axe = Accessibility(WITH_MODERATE)

    page = _agent_in_admin(browser, site, superuser, password)
    _held_run_page(page, axe, "desktop")
    _expect_the_four_in_words(page, four_leave)
    axe.check(page, "held run")
    page.get_by_role("button", name="Discard: change nobody").click()
    expect(page.locator(".messagelist")).to_contain_text("(Discarded)")
    expect(page.get_by_role("heading", name="Held: 4 people would be deactivated")).to_have_count(0)
    expect(page.get_by_role("button", name="Apply: deactivate 4 people")).to_have_count(0)
    axe.check(page, "discarded run")
    held.refresh_from_db()
    assert (held.status, held.decided_by) == (Status.DISCARDED, superuser)
    assert leaving.filter(is_active=True).count() == 4
    discarded = AuditEvent.objects.get(action="directory.sync_run_discarded")
    assert (discarded.actor, discarded.details["sync_run"], discarded.details["would_deactivate"]) == (
        superuser,
        held.pk,
        4,
    )

    # The next scheduled run holds again; this time another superuser applies it, from their phone.
    again = sync.sync_directory()
    assert again.status == Status.HELD
    phone = _agent_in_admin(browser, site, second_superuser, password, screen=PHONE)
    _held_run_page(phone, axe, "phone")
    _expect_the_four_in_words(phone, four_leave)
    axe.check(phone, "held run on a phone")
    assert horizontal_overflow(phone) <= 0, "the held run scrolls sideways on a 390 px wide phone"
    phone.get_by_role("button", name="Apply: deactivate 4 people").click()
    # Queued to the worker (run in the site's process here, before the page comes back): the page shows the outcome.
    expect(phone.locator(".messagelist")).to_contain_text("Applying this run was queued")
    expect(phone.locator(".fieldBox.field-status")).to_contain_text("Applied")
    expect(phone.get_by_role("button", name="Apply: deactivate 4 people")).to_have_count(0)
    axe.check(phone, "applied run on a phone")
    again.refresh_from_db()
    assert (again.status, again.decided_by, again.deactivated) == (Status.APPLIED, second_superuser, 4)
    assert not leaving.filter(is_active=True).exists()
    applied = AuditEvent.objects.get(action="directory.sync_run_applied")
    assert (applied.actor, applied.details["sync_run"]) == (second_superuser, again.pk)
    # Each deactivation is audited as the sync's, naming the run the superuser applied.
    deactivated = AuditEvent.objects.filter(action="directory.person_deactivated", details__sync_run=again.pk)
    assert sorted(event.subject.username for event in deactivated) == sorted(four_leave)
    axe.assert_clean()


def test_dir_03_a_long_held_run_is_read_a_hundred_people_a_page(
    browser,
    site,
    superuser,
    four_leave,  # noqa: F811 (the fixture)
    password,
    settings,
    make_user,
):
    settings.DIRECTORY_MAX_DEACTIVATIONS = 3
    held = held_run_of(150, make_user)
    axe = Accessibility()
    page = _agent_in_admin(browser, site, superuser, password)
    page.goto(f"/admin/directory/directorysyncrun/{held.pk}/change/")
    region = page.get_by_role("region", name="Held: 150 people would be deactivated")
    expect(region.get_by_text("This run would deactivate 150 people; this page lists numbers 1 to 100")).to_be_visible()
    expect(region.get_by_role("table").locator("tbody tr")).to_have_count(100)
    expect(page.get_by_role("button", name="Apply: deactivate 150 people")).to_be_visible()
    axe.check(page, "held run, first page")
    pages = page.get_by_role("navigation", name="Pages of the people this run would deactivate")
    pages.get_by_role("link", name="Next page").click()
    expect(region.get_by_text("this page lists numbers 101 to 150")).to_be_visible()
    expect(region.get_by_role("table").locator("tbody tr")).to_have_count(50)
    expect(pages.get_by_role("link", name="Next page")).to_have_count(0)
    expect(page.get_by_role("button", name="Discard: change nobody")).to_be_visible()
    axe.check(page, "held run, last page")
    pages.get_by_role("link", name="Previous page").click()
    expect(region.get_by_text("this page lists numbers 1 to 100")).to_be_visible()
    axe.assert_clean()
