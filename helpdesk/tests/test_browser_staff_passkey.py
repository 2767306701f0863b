"""Phishing-resistant sign-in for staff (WA-05) with a passkey, in real Chromium with a virtual platform authenticator.

The walk of test_browser_staff_factor.py with the factor most staff will use: a help-desk agent past the staff date
who signs in with an app code is turned away by the admin, adds a passkey on this computer (transport ``internal``,
resident key, user verification) from the page that turned them away, and is let in once they sign in with it as
their second factor. axe-core checks the pages the security-key walk does not: the second-factor page offering a
passkey or a code, and the admin entered with a passkey.
"""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from devices.tests.browser import DESKTOP, Accessibility
from devices.tests.test_browser_enrollment import _heading, _shot, _sign_in_with_password
from devices.tests.test_browser_passkey import _choose_passkey, _credentials, _page_with_passkeys, _sign_out
from identity.models import AuditEvent
from testsupport import fresh_code

from .test_browser_staff_factor import ADMIN_HOME, REFUSED

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_WA_05_agent_past_the_date_refused_with_a_code_then_let_in_with_a_passkey(
    browser,
    site,
    staff_member,
    password,
    settings,
    tmp_path,  # noqa: F811 (the fixtures imported above)
):
    app = staff_member.registrations.get().app_device
    # Without autofill (the default), so the virtual authenticator does not sign in on its own from the ID field.
    page, cdp, authenticator = _page_with_passkeys(browser, site, DESKTOP, synced=True)
    axe = Accessibility()

    def visit(name):
        axe.check(page, name)
        _shot(page, tmp_path, name)

    # Past the date: the agent signs in with an app code and the admin turns them away.
    settings.STAFF_PHISHING_RESISTANT_FROM = (timezone.localdate() - timedelta(days=1)).isoformat()
    page.goto("/admin/")
    _sign_in_with_password(page, staff_member, password)
    _heading(page, "Enter a code from your device")
    page.get_by_role("textbox", name="Code").fill(fresh_code(app))
    page.get_by_role("button", name="Verify").click()
    _heading(page, REFUSED)
    expect(page.get_by_text("This time you signed in with the authenticator app")).to_be_visible()
    expect(page.get_by_role("heading", name="You have none yet")).to_be_visible()
    expect(page.get_by_role("link", name=ADMIN_HOME)).to_have_count(0)
    page.goto("/admin/identity/user/")
    _heading(page, REFUSED)
    refused = AuditEvent.objects.filter(action="admin.refused_factor", subject=staff_member)
    assert refused.filter(details__path="/admin/identity/user/").count() == 1
    refusals = refused.count()

    # From the refusal page to My devices and the wizard: a passkey on this computer.
    page.get_by_role("link", name="My devices").click()
    _heading(page, "My devices")
    page.get_by_role("link", name="Add another device").click()
    page.get_by_role("link", name="Add another device").click()
    _choose_passkey(page)
    page.get_by_label("Name this phone or computer").fill("Desk laptop")
    page.get_by_role("button", name="Create passkey").click()
    _heading(page, "Success: your passkey is set up")
    [credential] = _credentials(cdp, authenticator)
    assert credential["isResidentCredential"]

    # Sign out, sign in again with the password and the passkey: the admin lets the agent in, without a reminder.
    _sign_out(page)
    page.goto("/admin/")
    _sign_in_with_password(page, staff_member, password)
    _heading(page, "Use your passkey or a code")
    visit("second-factor-passkey-or-code")
    page.get_by_role("button", name="Use your passkey").click()
    expect(page.get_by_role("heading", name=ADMIN_HOME)).to_be_visible()
    expect(page.get_by_role("note")).to_have_count(0)
    visit("admin-with-passkey")
    page.goto("/admin/identity/user/")
    expect(page.get_by_role("link", name=staff_member.username)).to_be_visible()

    assert AuditEvent.objects.filter(
        action="signin.second_factor_ok", subject=staff_member, details__factor="passkey"
    ).exists()
    assert refused.count() == refusals
    assert axe.checked == ["second-factor-passkey-or-code", "admin-with-passkey"]
    axe.assert_clean()
