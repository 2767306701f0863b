"""A passkey as a person uses it: real Chromium with a virtual platform authenticator against the live site.

Chrome's DevTools Protocol gives the page a virtual authenticator built into "this computer" (transport
``internal``) that keeps resident credentials and verifies its user, with the backup flags a synced passkey
reports (``defaultBackupEligibility``, ``defaultBackupState``). The browser runs the real ceremonies with it,
static/js/webauthn.js talks to it as to any passkey, and the server checks its real signatures. axe-core checks
every new page; one walk runs on a phone-sized screen.
"""

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from devices import errors, services
from devices.models import Registration, SecurityKeyDevice
from identity.models import AuditEvent
from testsupport import fresh_code

from .browser import DESKTOP, PHONE, Accessibility, horizontal_overflow, page_with_authenticator
from .test_browser_enrollment import _heading, _shot, _sign_in_with_password
from .test_browser_security_key import _base64url, _credentials

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


# A browser without conditional mediation, where the button is the way in. Chromium's virtual authenticator
# answers a conditional request at once (as a person picking the passkey from the ID field's autofill would), so a
# walk that presses the button must not have one pending.
WITHOUT_AUTOFILL = """
if (window.PublicKeyCredential) {
  PublicKeyCredential.isConditionalMediationAvailable = function () { return Promise.resolve(false); };
}
"""


def _page_with_passkeys(browser, site, screen, *, synced: bool, autofill: bool = False):  # noqa: F811
    return page_with_authenticator(
        browser,
        site,
        screen,
        init_script=None if autofill else WITHOUT_AUTOFILL,
        transport="internal",
        hasResidentKey=True,
        hasUserVerification=True,
        isUserVerified=True,
        defaultBackupEligibility=synced,
        defaultBackupState=synced,
    )


def _sign_out(page):
    page.get_by_role("navigation", name="Account").get_by_role("button", name="Sign out").click()
    _heading(page, "Sign in")


def _choose_passkey(page):
    _heading(page, "What kind of device will you use?")
    page.get_by_label("This phone or computer (passkey)").check()
    page.get_by_role("button", name="Continue").click()
    _heading(page, "Set up a passkey on this phone or computer")


def _events(action, person, **details):
    filters = {f"details__{key}": value for key, value in details.items()}
    return AuditEvent.objects.filter(action=action, subject=person, **filters)


def test_passkey_in_chromium_wizard_second_factor_passwordless_and_refused_without_user_verification(
    browser,  # noqa: F811 (the fixture)
    site,  # noqa: F811 (the fixture)
    make_user,
    password,
    tmp_path,
):
    person = make_user("pk1234", first_name="Pat", last_name="Kim")
    page, cdp, authenticator = _page_with_passkeys(browser, site, DESKTOP, synced=True)
    axe = Accessibility()

    def visit(name):
        axe.check(page, name)
        _shot(page, tmp_path, name)

    page.goto("/")
    _heading(page, "Sign in")
    expect(page.get_by_label("Institution ID")).to_have_attribute("autocomplete", "username webauthn")
    visit("sign-in")
    _sign_in_with_password(page, person, password)
    page.get_by_role("link", name="Start setup").click()

    # The wizard: name it, create it, unlock it (the virtual authenticator verifies its user).
    _choose_passkey(page)
    expect(page.get_by_text("Step 2 of 2 · This phone or computer (passkey)")).to_be_visible()
    expect(page.get_by_text("Face ID or Touch ID")).to_be_visible()
    expect(page.get_by_text("Windows Hello (face, fingerprint or PIN)")).to_be_visible()
    visit("register-passkey")
    page.get_by_label("Name this phone or computer").fill("Pat's laptop")
    page.get_by_role("button", name="Create passkey").click()
    _heading(page, "Success: your passkey is set up")
    expect(page.get_by_text("Sign in with a passkey")).to_be_visible()
    visit("passkey-success")

    [credential] = _credentials(cdp, authenticator)
    assert credential["isResidentCredential"]
    registration = Registration.objects.select_related("security_key_device").get(user=person)
    device = registration.security_key_device
    assert (registration.kind, registration.status) == (Registration.Kind.PASSKEY, Registration.Status.ACTIVE)
    assert device.credential_id == _base64url(credential["credentialId"])
    assert device.form == SecurityKeyDevice.Form.PASSKEY and device.discoverable and device.user_verified
    # WA-04: the authenticator said the credential is synced; that is what was recorded.
    assert (device.backup_eligible, device.backed_up) == (True, True)

    # As the second factor, after the password.
    _sign_out(page)
    _sign_in_with_password(page, person, password)
    _heading(page, "Use your passkey")
    visit("second-factor-passkey")
    page.get_by_role("button", name="Use your passkey").click()
    _heading(page, "My devices")
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="Pat's laptop", exact=True))
    expect(row).to_contain_text("This phone or computer (passkey)")
    expect(row).to_contain_text("Unlocking the passkey")
    visit("my-devices-passkey")
    assert _events("signin.second_factor_ok", person, factor="passkey").exclude(details__has_key="method").exists()

    # Passwordless: no ID, no password; the session is fully signed in with the passkey.
    _sign_out(page)
    passwords_before = _events("signin.password_ok", person).count()
    page.get_by_role("button", name="Sign in with a passkey").click()
    _heading(page, "My devices")
    expect(page).to_have_url(re.compile(r"/devices/$"))
    assert _events("signin.second_factor_ok", person, factor="passkey", method="passwordless").count() == 1
    assert _events("signin.password_ok", person).count() == passwords_before
    # A page that needs a verified second factor opens: the session is verified, not half signed in.
    page.get_by_role("link", name="Add another device").click()
    expect(page.get_by_role("heading", level=1)).not_to_have_text("Sign in")

    # The synced passkey on another computer whose browser offers passkeys in the ID field's autofill
    # (conditional mediation): opening the sign-in page and picking it there signs the person in.
    other, other_cdp, other_authenticator = _page_with_passkeys(browser, site, DESKTOP, synced=True, autofill=True)
    # As it stands now: its counter has moved on with every use, and a copy that signs a lower one is refused.
    [synced_copy] = _credentials(cdp, authenticator)
    other_cdp.send("WebAuthn.addCredential", {"authenticatorId": other_authenticator, "credential": synced_copy})
    other.goto("/")
    _heading(other, "My devices")
    assert _events("signin.second_factor_ok", person, factor="passkey", method="passwordless").count() == 2
    other.context.close()

    # Without user verification the passkey never signs anyone in alone (WA-02).
    _sign_out(page)
    cdp.send("WebAuthn.setUserVerified", {"authenticatorId": authenticator, "isUserVerified": False})
    signed_in_before = _events("signin.second_factor_ok", person).count()
    page.get_by_role("button", name="Sign in with a passkey").click()
    # The browser itself will not hand over an assertion the authenticator could not verify the person for; the
    # server's own refusal of one without the UV flag is in test_passkeys.py.
    expect(page.locator("[data-webauthn-status]")).to_contain_text("The passkey did not answer in time")
    expect(page.get_by_role("button", name="Sign in with a passkey")).to_be_enabled()
    visit("passwordless-refused")
    page.goto("/devices/")
    _heading(page, "Sign in")
    assert _events("signin.second_factor_ok", person).count() == signed_in_before

    assert axe.checked == [
        "sign-in",
        "register-passkey",
        "passkey-success",
        "second-factor-passkey",
        "my-devices-passkey",
        "passwordless-refused",
    ]
    axe.assert_clean()


def test_passkey_in_chromium_from_my_devices_on_a_phone_then_retired_and_refused(
    browser,  # noqa: F811 (the fixture)
    site,  # noqa: F811 (the fixture)
    make_user,
    enroll,
    password,
    tmp_path,
):
    person = make_user("pk5678", first_name="Lee", last_name="Ray")
    app = enroll(person).app_device
    page, cdp, authenticator = _page_with_passkeys(browser, site, PHONE, synced=False)
    axe = Accessibility()
    overflowing = {}

    def visit(name):
        axe.check(page, name)
        _shot(page, tmp_path, f"phone-{name}")
        if (extra := horizontal_overflow(page)) > 0:
            overflowing[name] = extra

    page.goto("/")
    _heading(page, "Sign in")
    visit("sign-in")
    _sign_in_with_password(page, person, password)
    _heading(page, "Enter a code from your device")
    page.get_by_label("Code", exact=True).fill(fresh_code(app))
    page.get_by_role("button", name="Verify").click()
    _heading(page, "My devices")

    # From My devices: add another device, a passkey on this phone.
    page.get_by_role("link", name="Add another device").click()
    page.get_by_role("link", name="Add another device").click()
    _choose_passkey(page)
    visit("register-passkey")
    page.get_by_label("Name this phone or computer").fill("Lee's phone")
    page.get_by_role("button", name="Create passkey").click()
    _heading(page, "Success: your passkey is set up")
    visit("passkey-success")
    page.get_by_role("link", name="Go to My devices").click()
    _heading(page, "My devices")
    expect(page.get_by_text("Unlocking the passkey")).to_be_visible()
    visit("my-devices")
    device = SecurityKeyDevice.objects.get(user=person)
    # A device-bound passkey: the authenticator said it may not be synced, and that is what was recorded.
    assert (device.form, device.backup_eligible, device.backed_up) == (SecurityKeyDevice.Form.PASSKEY, False, False)

    # It signs in alone, on the phone too.
    _sign_out(page)
    page.get_by_role("button", name="Sign in with a passkey").click()
    _heading(page, "My devices")

    # Removed: the same passkey, still on the phone, is refused as a wrong one would be (WA-03).
    passkey = Registration.objects.get(user=person, kind=Registration.Kind.PASSKEY)
    services.retire_registration(passkey, actor=person, verified_at=timezone.now())
    _sign_out(page)
    assert len(_credentials(cdp, authenticator)) == 1
    page.get_by_role("button", name="Sign in with a passkey").click()
    _heading(page, "Sign in")
    expect(page.get_by_text(errors.PASSKEY_NOT_ACCEPTED)).to_be_visible()
    visit("passwordless-retired")
    page.goto("/devices/")
    _heading(page, "Sign in")
    assert AuditEvent.objects.filter(action="signin.passwordless_refused", details__reason="not_in_use").exists()

    assert not overflowing, f"pages scroll sideways on a 390 px wide phone (extra CSS px): {overflowing}"
    axe.assert_clean()
