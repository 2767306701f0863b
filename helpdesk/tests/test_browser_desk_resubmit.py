"""A reload of the page showing bypass codes, in real Chromium (BND-10): the browser posts the same form again; no
new set is issued, no code is shown, and the agent reads on the person's page what was done, when and by whom.
axe-core checks the pages on the way."""

import pytest
from playwright.sync_api import expect

from devices.models import BypassCode, BypassCodeDevice
from devices.tests.browser import WITH_MODERATE, Accessibility, chromium
from helpdesk import errors
from identity.models import AuditEvent

from .test_browser_desk import _agent_in_admin

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_bnd10_reloading_the_bypass_codes_page_issues_no_new_set_and_shows_no_code(
    live_server, staff_member, caller, password
):
    axe = Accessibility(WITH_MODERATE)
    with chromium() as browser:
        page = _agent_in_admin(browser, live_server.url, staff_member, password)
        page.goto(f"/admin/identity/user/{caller.pk}/change/")
        page.get_by_role("link", name="Issue bypass codes").click()
        page.get_by_label("Called back on the number in the HR record").check()
        page.get_by_label("Ticket or case reference").fill("INC-8100")
        page.get_by_role("button", name="Record the check").click()
        page.get_by_label("How many codes").select_option("2")
        page.get_by_role("button", name="Yes, issue bypass codes").click()
        shown = page.locator(".bypass-codes code")
        expect(shown).to_have_count(2)
        codes = shown.all_inner_texts()

        page.reload()  # Chromium sends the POST again

        expect(page.get_by_role("heading", level=1)).to_have_text("Cal Ler (ID caller1)")
        told = page.locator(".messagelist")
        expect(told).to_contain_text("Nothing was done now: “issue bypass codes” was done for this person at ")
        expect(told).to_contain_text("by you, after this page was opened")
        expect(told).to_contain_text(errors.CODES_SHOWN_ONCE)
        assert not [code for code in codes if code in page.content()]
        axe.check(page, "person page after a reload of the codes")

        page.reload()  # now a GET of the person's page: nothing posted, nothing said again
        expect(page.locator(".messagelist")).to_have_count(0)

    [device] = BypassCodeDevice.objects.filter(user=caller)
    assert device.confirmed and BypassCode.objects.filter(device=device).count() == 2
    assert AuditEvent.objects.filter(action="bypass_codes.issued", subject=caller).count() == 1
    axe.assert_clean()
