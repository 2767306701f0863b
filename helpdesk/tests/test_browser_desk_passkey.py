"""A passkey registered at the help desk, in real Chromium (BND-07, BND-08, WA-01): the person brings their phone,
the agent's browser asks for "a phone or another device", and the phone makes the passkey.

Chromium's virtual authenticator plays the person's phone, reached from the desk computer over the hybrid transport
(``cable``, the QR code a phone scans), with resident keys and user verification. On the person's own phone (a
phone-sized screen) the same credential then signs them in with no ID or password. For a staff colleague a second
agent, in a second browser context, approves first, reading that it is a passkey. axe-core checks every page.
"""

import pytest
from playwright.sync_api import expect

from devices.models import Registration, SecurityKeyDevice
from devices.tests.browser import (
    DESKTOP,
    PHONE,
    WITH_MODERATE,
    Accessibility,
    horizontal_overflow,
    page_with_authenticator,
)
from devices.tests.test_browser_enrollment import _heading
from devices.tests.test_browser_passkey import WITHOUT_AUTOFILL
from devices.tests.test_browser_security_key import _base64url, _credentials
from helpdesk.forms import KEY_FORMS, PASSKEY
from helpdesk.models import ApprovalRequest
from identity.models import AuditEvent
from testsupport import fresh_code

from .test_browser_desk import _agent_in_admin, _sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSKEY_CHOICE = KEY_FORMS[PASSKEY]
# A phone that keeps passkeys and unlocks them with the person's face, fingerprint or screen lock.
UNLOCKS_WITH_A_PASSKEY = {"hasResidentKey": True, "hasUserVerification": True, "isUserVerified": True}


def _desk_with_the_persons_phone(browser, site, agent, password):
    """The agent's admin page, in a browser that reaches the person's phone (a virtual authenticator over hybrid)."""
    page, cdp, phone = page_with_authenticator(browser, site, DESKTOP, transport="cable", **UNLOCKS_WITH_A_PASSKEY)
    page.goto("/admin/")
    _sign_in(page, agent, password, fresh_code(agent.registrations.get().app_device))
    expect(page.get_by_role("heading", name="People, devices and audit")).to_be_visible()
    return page, cdp, phone


def _persons_own_phone(browser, site, credential):
    """A phone-sized browser of the person's, holding the passkey the desk registered (the phone's own copy). The
    button is the way in, as in the passkey walk (no autofill)."""
    page, cdp, authenticator = page_with_authenticator(
        browser, site, PHONE, init_script=WITHOUT_AUTOFILL, transport="internal", **UNLOCKS_WITH_A_PASSKEY
    )
    cdp.send("WebAuthn.addCredential", {"authenticatorId": authenticator, "credential": credential})
    return page


def _register_for(page, person, reference):
    """From the person's page to the desk's registration form, after checking who is at the desk."""
    page.goto(f"/admin/identity/user/{person.pk}/change/")
    page.get_by_role("link", name="Register a security key").click()
    page.get_by_label("Photo ID checked in person").check()
    page.get_by_label("Ticket or case reference").fill(reference)
    page.get_by_role("button", name="Record the check").click()


def _registered_passkey(person, agent, cdp, phone) -> SecurityKeyDevice:
    [credential] = _credentials(cdp, phone)
    assert credential["isResidentCredential"]
    registration = Registration.objects.select_related("security_key_device").get(user=person, kind="passkey")
    device = registration.security_key_device
    assert registration.status == Registration.Status.ACTIVE
    assert device.credential_id == _base64url(credential["credentialId"])
    # WA-01: discoverable and verified the person; BND-07: who registered it for whom.
    assert (device.form, device.discoverable, device.user_verified) == (SecurityKeyDevice.Form.PASSKEY, True, True)
    assert device.registered_by == agent
    bound = AuditEvent.objects.get(action="device.bound", subject=person, details__factor="passkey")
    assert bound.actor == agent
    return device


def test_bnd07_WA_01_the_desk_registers_a_passkey_on_the_callers_phone_and_it_signs_them_in_alone(
    browser, site, staff_member, caller, password
):
    axe = Accessibility(WITH_MODERATE)
    page, cdp, phone = _desk_with_the_persons_phone(browser, site, staff_member, password)
    _register_for(page, caller, "INC-6100")
    expect(page.get_by_text("For a passkey: name it, press the button")).to_be_visible()
    axe.check(page, "register a key or passkey at the desk")

    # The button names what is chosen: a key at first, a passkey once it is chosen.
    expect(page.get_by_role("button", name="Yes, register a security key")).to_be_visible()
    page.get_by_label(PASSKEY_CHOICE).check()
    expect(page.get_by_role("button", name="Yes, register a security key")).to_have_count(0)
    page.get_by_label("Name this key").fill("Cal's phone")
    # The phone cannot unlock the passkey (no face, fingerprint or screen lock): the browser refuses, and the page
    # says so in a passkey's words; nothing is registered.
    cdp.send("WebAuthn.setUserVerified", {"authenticatorId": phone, "isUserVerified": False})
    page.get_by_role("button", name="Yes, register a passkey").click()
    status = page.locator("[data-webauthn-status]")
    expect(status).to_contain_text("The passkey did not answer in time")
    expect(page.get_by_role("button", name="Yes, register a passkey")).to_be_enabled()
    axe.check(page, "passkey refused at the desk")
    assert not Registration.objects.filter(user=caller, kind="passkey").exists()

    # Unlocked this time.
    cdp.send("WebAuthn.setUserVerified", {"authenticatorId": phone, "isUserVerified": True})
    page.get_by_role("button", name="Yes, register a passkey").click()
    expect(page.locator(".messagelist")).to_contain_text("Passkey “Cal's phone” registered; the person was told")
    expect(page.get_by_role("heading", level=1)).to_have_text("Cal Ler (ID caller1)")
    axe.check(page, "person page after the passkey")
    _registered_passkey(caller, staff_member, cdp, phone)
    desk = AuditEvent.objects.get(action="helpdesk.action", subject=caller)
    assert (desk.details["action"], desk.details["reference"]) == ("register_security_key", "INC-6100")

    # At home, on their phone: the passkey alone signs them in.
    [credential] = _credentials(cdp, phone)
    own = _persons_own_phone(browser, site, credential)
    own.goto("/")
    _heading(own, "Sign in")
    axe.check(own, "sign in, on the person's phone")
    own.get_by_role("button", name="Sign in with a passkey").click()
    _heading(own, "My devices")
    row = own.get_by_role("row").filter(has=own.get_by_role("rowheader", name="Cal's phone", exact=True))
    expect(row).to_contain_text("Unlocking the passkey")
    axe.check(own, "my devices, on the person's phone")
    assert horizontal_overflow(own) <= 0, "My devices scrolls sideways on a 390 px wide phone"
    signed_in = AuditEvent.objects.filter(action="signin.second_factor_ok", subject=caller, details__factor="passkey")
    assert signed_in.filter(details__method="passwordless").count() == 1
    axe.assert_clean()


def test_bnd08_WA_01_a_passkey_for_a_staff_colleague_is_approved_by_a_second_agent_then_registered(
    browser, site, staff_member, second_agent, auditor, password
):
    axe = Accessibility(WITH_MODERATE)
    a, cdp, phone = _desk_with_the_persons_phone(browser, site, staff_member, password)
    _register_for(a, auditor, "INC-6200")
    expect(a.get_by_text("A second agent must approve this.")).to_be_visible()
    expect(a.locator("[data-webauthn]")).to_have_count(0)  # nothing to touch before the approval
    a.get_by_label(PASSKEY_CHOICE).check()
    a.get_by_label("Name this key").fill("Aud's phone")
    axe.check(a, "file a passkey for a staff colleague")
    a.get_by_role("button", name="Ask for approval").click()
    expect(a.locator(".messagelist")).to_contain_text("Asked a second agent to approve this")
    request = ApprovalRequest.objects.get(person=auditor, action="register_security_key")
    assert request.params["form"] == "passkey"

    # B, in a browser of their own, reads what they approve: a passkey on the colleague's phone, by its name.
    b = _agent_in_admin(browser, site, second_agent, password)
    b.goto(f"/admin/helpdesk/approvalrequest/{request.pk}/change/")
    expect(b.get_by_text(f"{PASSKEY_CHOICE}; named “Aud's phone”")).to_be_visible()
    axe.check(b, "approve a passkey for a staff colleague")
    b.get_by_role("button", name="Approve", exact=True).click()
    expect(b.get_by_text(f"Approved. {staff_member} registers the key with the person at the desk")).to_be_visible()
    assert not Registration.objects.filter(user=auditor, kind="passkey").exists()

    # A registers it from the request, the colleague unlocking their phone; the approved choice stands.
    a.goto(f"/admin/helpdesk/approvalrequest/{request.pk}/change/")
    a.get_by_role("link", name="Register a security key").click()
    expect(a.get_by_text(f"{second_agent} approved this")).to_be_visible()
    # What B approved is shown as approved, not offered for change: it is what runs.
    expect(a.get_by_label(PASSKEY_CHOICE)).to_be_checked()
    expect(a.get_by_label(PASSKEY_CHOICE)).to_be_disabled()
    expect(a.get_by_label("Name this key")).to_have_value("Aud's phone")
    expect(a.get_by_label("Name this key")).to_be_disabled()
    axe.check(a, "register the approved passkey")
    a.get_by_role("button", name="Yes, register a passkey").click()
    expect(a.locator(".messagelist")).to_contain_text("Passkey “Aud's phone” registered")
    _registered_passkey(auditor, staff_member, cdp, phone)
    request.refresh_from_db()
    assert (request.status, request.decided_by) == (ApprovalRequest.Status.APPROVED, second_agent)
    axe.assert_clean()
