"""Phishing-resistant sign-in for staff (WA-05) in real Chromium, with Chrome's virtual FIDO2 key (DevTools Protocol).

A help-desk agent who signs in with an app code is reminded before the staff date, turned away after it, adds a
security key from the page that turned them away, and is let in once they sign in with the key. axe-core checks the
pages this adds or changes; the refusal is checked on a phone-sized screen too.
"""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from devices.tests.browser import Accessibility, horizontal_overflow
from devices.tests.test_browser_enrollment import _heading, _shot, _sign_in_with_password
from devices.tests.test_browser_security_key import _choose_security_key, _page_with_security_key
from identity.models import AuditEvent
from testsupport import fresh_code

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ADMIN_HOME = "People, devices and audit"
REFUSED = "Sign in with a security key or passkey"


def _date(settings, days: int) -> None:
    settings.STAFF_PHISHING_RESISTANT_FROM = (timezone.localdate() + timedelta(days=days)).isoformat()


def test_WA_05_agent_reminded_then_refused_with_a_code_then_let_in_with_a_security_key(
    browser,
    site,
    staff_member,
    password,
    settings,
    tmp_path,  # noqa: F811 (the fixtures imported above)
):
    app = staff_member.registrations.get().app_device
    page, cdp, authenticator = _page_with_security_key(browser, site)
    axe = Accessibility()

    def visit(name):
        axe.check(page, name)
        _shot(page, tmp_path, name)

    # Two weeks before the date: in, with a reminder on every admin page.
    _date(settings, 14)
    page.goto("/admin/")
    _sign_in_with_password(page, staff_member, password)
    page.get_by_role("textbox", name="Code").fill(fresh_code(app))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("heading", name=ADMIN_HOME)).to_be_visible()
    nudge = page.get_by_role("note")
    expect(nudge).to_contain_text("the admin accepts only a security key or a passkey")
    expect(nudge.get_by_role("link", name="My devices")).to_be_visible()
    visit("admin-reminded")

    # The date has come: the same session, verified with a code, is turned away, and told what to do.
    _date(settings, 0)
    page.goto("/admin/identity/user/")
    _heading(page, REFUSED)
    expect(page.get_by_text("This time you signed in with the authenticator app")).to_be_visible()
    expect(page.get_by_role("heading", name="You have none yet")).to_be_visible()
    expect(page.get_by_role("link", name=ADMIN_HOME)).to_have_count(0)
    visit("admin-refused")
    page.set_viewport_size({"width": 390, "height": 844})
    assert horizontal_overflow(page) <= 0
    _shot(page, tmp_path, "admin-refused-phone")
    page.set_viewport_size({"width": 1280, "height": 900})
    refused = AuditEvent.objects.filter(action="admin.refused_factor", subject=staff_member)
    assert refused.get().details["path"] == "/admin/identity/user/"

    # Adding a key is self-service, outside the admin: from the refusal page to My devices and the wizard.
    page.get_by_role("link", name="My devices").click()
    _heading(page, "My devices")
    page.get_by_role("link", name="Add another device").click()
    page.get_by_role("link", name="Add another device").click()
    _choose_security_key(page)
    page.get_by_label("Name this key").fill("Desk key")
    page.get_by_role("button", name="Register security key").click()
    _heading(page, "Success: your security key is set up")

    # Sign out, sign in again with the key: the admin lets the agent in, without a reminder.
    page.get_by_role("navigation", name="Account").get_by_role("button", name="Sign out").click()
    page.goto("/admin/")
    _sign_in_with_password(page, staff_member, password)
    _heading(page, "Use your security key or a code")
    page.get_by_role("button", name="Use your security key").click()
    expect(page.get_by_role("heading", name=ADMIN_HOME)).to_be_visible()
    expect(page.get_by_role("note")).to_have_count(0)
    visit("admin-with-key")
    page.goto("/admin/identity/user/")
    expect(page.get_by_role("link", name=staff_member.username)).to_be_visible()

    assert AuditEvent.objects.filter(
        action="signin.second_factor_ok", subject=staff_member, details__factor="security_key"
    ).exists()
    assert refused.count() == 1
    assert axe.checked == ["admin-reminded", "admin-refused", "admin-with-key"]
    axe.assert_clean()
