"""A security key for a staff colleague at the desk, in real Chromium with a virtual FIDO2 key (BND-07, BND-08, WA-05).

Before the staff date, agent A checks the colleague's identity and files the key (a staff account needs a second
agent); agent B approves; A registers the key with the colleague at the desk. Once the date has come, the colleague
signs in with that key and the admin lets them in. axe-core checks every admin page on the way.
"""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from devices.models import Registration
from devices.tests.browser import WITH_MODERATE, Accessibility
from devices.tests.test_browser_enrollment import _heading, _sign_in_with_password
from devices.tests.test_browser_security_key import _page_with_security_key
from helpdesk.models import ApprovalRequest
from identity.models import AuditEvent
from testsupport import fresh_code

from .test_browser_desk import _agent_in_admin

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_bnd08_WA_05_a_key_for_a_staff_colleague_filed_approved_registered_then_used_past_the_date(
    browser,
    site,
    staff_member,
    second_agent,
    auditor,
    password,
    settings,  # noqa: F811 (the fixtures imported above)
):
    settings.STAFF_PHISHING_RESISTANT_FROM = (timezone.localdate() + timedelta(days=7)).isoformat()
    axe = Accessibility(WITH_MODERATE)
    a, cdp, authenticator = _page_with_security_key(browser, site)
    a.goto("/admin/")
    _sign_in_with_password(a, staff_member, password)
    a.get_by_role("textbox", name="Code").fill(fresh_code(staff_member.registrations.get().app_device))
    a.get_by_role("button", name="Verify").click()
    expect(a.get_by_role("heading", name="People, devices and audit")).to_be_visible()

    # A: the colleague is at the desk; check who they are, then file the key (a staff account: four eyes).
    a.goto(f"/admin/identity/user/{auditor.pk}/change/")
    axe.check(a, "a staff colleague's page")
    a.get_by_role("link", name="Register a security key").click()
    axe.check(a, "identity check before filing a key")
    a.get_by_label("Photo ID checked in person").check()
    a.get_by_label("Ticket or case reference").fill("INC-8001")
    a.get_by_role("button", name="Record the check").click()
    expect(a.get_by_text("A second agent must approve this.")).to_be_visible()
    expect(a.locator("[data-webauthn]")).to_have_count(0)
    a.get_by_label("Name this key").fill("Desk key")
    axe.check(a, "file a key for a staff colleague")
    a.get_by_role("button", name="Ask for approval").click()
    expect(a.locator(".messagelist")).to_contain_text("you register the key from the person's page")
    axe.check(a, "a key filed for approval")
    request = ApprovalRequest.objects.get(person=auditor, action="register_security_key")

    # B approves: nothing runs yet, the key is touched at the desk.
    b = _agent_in_admin(browser, site, second_agent, password)
    b.goto(f"/admin/helpdesk/approvalrequest/{request.pk}/change/")
    expect(b.get_by_text("Approving does not run this now: the key is touched at the desk")).to_be_visible()
    axe.check(b, "approve a key for a staff colleague")
    b.get_by_role("button", name="Approve", exact=True).click()
    expect(b.get_by_text(f"Approved. {staff_member} registers the key with the person at the desk")).to_be_visible()
    axe.check(b, "a key approved")

    # A registers it, from the request, with the colleague touching the key.
    a.goto(f"/admin/helpdesk/approvalrequest/{request.pk}/change/")
    expect(a.get_by_role("heading", name="Approved: finish it at the desk")).to_be_visible()
    axe.check(a, "approved key request")
    a.get_by_role("link", name="Register a security key").click()
    expect(a.get_by_text(f"{second_agent} approved this")).to_be_visible()
    expect(a.get_by_label("Name this key")).to_have_value("Desk key")
    axe.check(a, "register the approved key")
    a.get_by_role("button", name="Yes, register a security key").click()
    expect(a.locator(".messagelist")).to_contain_text("Security key “Desk key” registered")
    axe.check(a, "a key registered")
    registration = Registration.objects.get(user=auditor, kind=Registration.Kind.SECURITY_KEY)
    assert registration.security_key_device.registered_by == staff_member
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.APPROVED

    # The date comes. A's session was verified with a code: turned away; A signs out, and the colleague signs in at
    # the same computer with the key they just registered.
    settings.STAFF_PHISHING_RESISTANT_FROM = timezone.localdate().isoformat()
    a.goto("/admin/")
    _heading(a, "Sign in with a security key or passkey")
    a.get_by_role("button", name="Sign out").click()
    a.goto("/admin/")
    _sign_in_with_password(a, auditor, password)
    a.get_by_role("button", name="Use your security key").click()
    expect(a.get_by_role("heading", name="People, devices and audit")).to_be_visible()
    axe.check(a, "admin home page, signed in with the key")
    assert AuditEvent.objects.filter(action="admin.refused_factor", subject=staff_member).count() == 1
    assert not AuditEvent.objects.filter(action="admin.refused_factor", subject=auditor).exists()
    axe.assert_clean()
