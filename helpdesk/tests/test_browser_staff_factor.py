"""Phishing-resistant sign-in for staff (WA-05) in real Chromium, with Chrome's virtual FIDO2 key (DevTools Protocol).

A help-desk agent who signs in with an app code is reminded before the staff date, turned away after it, adds a
security key from the page that turned them away, and is let in once they sign in with the key. axe-core checks the
pages this adds or changes; the refusal is checked on a phone-sized screen too.
"""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from devices.tests.browser import WITH_MODERATE, Accessibility, horizontal_overflow
from devices.tests.test_browser_enrollment import _heading, _shot
from devices.tests.test_browser_security_key import _choose_security_key, _page_with_security_key
from identity.models import AuditEvent

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _date(settings, days: int) -> None:
    settings.STAFF_PHISHING_RESISTANT_FROM = (timezone.localdate() + timedelta(days=days)).isoformat()


def test_WA_05_agent_reminded_then_refused_with_a_code_then_let_in_with_a_security_key(
    browser,
    site,
    staff_member,
    staff_admin,
    settings,
    tmp_path,  # noqa: F811 (the fixtures imported above)
):
    page, cdp, authenticator = _page_with_security_key(browser, site)
    axe = Accessibility(WITH_MODERATE)

    def visit(name):
        axe.check(page, name)
        _shot(page, tmp_path, name)

    # Two weeks before the date: in, with a reminder on every admin page.
    _date(settings, 14)
    staff_admin.sign_in(page)
    expect(page.get_by_role("heading", name=staff_admin.home)).to_be_visible()
    nudge = page.get_by_role("note")
    expect(nudge).to_contain_text("the admin accepts only a security key or a passkey")
    expect(nudge.get_by_role("link", name="My devices")).to_be_visible()
    visit("admin-reminded")

    # The date has come: the same session, verified with a code, is turned away, and told what to do.
    _date(settings, 0)
    page.goto("/admin/identity/user/")
    staff_admin.expect_refused(page)
    visit("admin-refused")
    page.set_viewport_size({"width": 390, "height": 844})
    assert horizontal_overflow(page) <= 0
    _shot(page, tmp_path, "admin-refused-phone")
    page.set_viewport_size({"width": 1280, "height": 900})
    refused = AuditEvent.objects.filter(action="admin.refused_factor", subject=staff_member)
    assert refused.get().details["path"] == "/admin/identity/user/"

    # Adding a key is self-service, outside the admin: from the refusal page to My devices and the wizard.
    staff_admin.to_wizard(page)
    _choose_security_key(page)
    page.get_by_label("Name this key").fill("Desk key")
    page.get_by_role("button", name="Register security key").click()
    _heading(page, "Success: your security key is set up")

    # Sign out, sign in again with the key: the admin lets the agent in, without a reminder.
    page.get_by_role("navigation", name="Account").get_by_role("button", name="Sign out").click()
    staff_admin.sign_in(page, heading="Use your security key or a code", button="Use your security key")
    staff_admin.expect_let_in(page, visit, "admin-with-key")

    assert AuditEvent.objects.filter(
        action="signin.second_factor_ok", subject=staff_member, details__factor="security_key"
    ).exists()
    assert refused.count() == 1
    assert axe.checked == ["admin-reminded", "admin-refused", "admin-with-key"]
    axe.assert_clean()
