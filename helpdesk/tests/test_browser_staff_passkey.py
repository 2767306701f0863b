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

from devices.tests.browser import DESKTOP, WITH_MODERATE, Accessibility
from devices.tests.test_browser_enrollment import _heading, _shot
from devices.tests.test_browser_passkey import _choose_passkey, _credentials, _page_with_passkeys, _sign_out
from identity.models import AuditEvent

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_WA_05_agent_past_the_date_refused_with_a_code_then_let_in_with_a_passkey(
    browser,
    site,
    staff_member,
    staff_admin,
    settings,
    tmp_path,  # noqa: F811 (the fixtures imported above)
):
    # Without autofill (the default), so the virtual authenticator does not sign in on its own from the ID field.
    page, cdp, authenticator = _page_with_passkeys(browser, site, DESKTOP, synced=True)
    axe = Accessibility(WITH_MODERATE)

    def visit(name):
        axe.check(page, name)
        _shot(page, tmp_path, name)

    # Past the date: the agent signs in with an app code and the admin turns them away.
    settings.STAFF_PHISHING_RESISTANT_FROM = (timezone.localdate() - timedelta(days=1)).isoformat()
    staff_admin.sign_in(page)
    staff_admin.expect_refused(page)
    page.goto("/admin/identity/user/")
    _heading(page, staff_admin.refused)
    refused = AuditEvent.objects.filter(action="admin.refused_factor", subject=staff_member)
    assert refused.filter(details__path="/admin/identity/user/").count() == 1
    refusals = refused.count()

    # From the refusal page to My devices and the wizard: a passkey on this computer.
    staff_admin.to_wizard(page)
    _choose_passkey(page)
    page.get_by_label("Name this phone or computer").fill("Desk laptop")
    page.get_by_role("button", name="Create passkey").click()
    _heading(page, "Success: your passkey is set up")
    [credential] = _credentials(cdp, authenticator)
    assert credential["isResidentCredential"]

    # Sign out, sign in again with the password and the passkey: the admin lets the agent in, without a reminder.
    _sign_out(page)
    staff_admin.sign_in(
        page,
        heading="Use your passkey or a code",
        button="Use your passkey",
        look=lambda: visit("second-factor-passkey-or-code"),
    )
    staff_admin.expect_let_in(page, visit, "admin-with-passkey")

    assert AuditEvent.objects.filter(
        action="signin.second_factor_ok", subject=staff_member, details__factor="passkey"
    ).exists()
    assert refused.count() == refusals
    assert axe.checked == ["second-factor-passkey-or-code", "admin-with-passkey"]
    axe.assert_clean()
