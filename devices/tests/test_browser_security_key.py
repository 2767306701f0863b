"""A security key as a person uses it: real Chromium with a virtual authenticator against the live site.

Chrome's DevTools Protocol gives the page a virtual FIDO2 key (``WebAuthn.addVirtualAuthenticator``):
the browser runs the real WebAuthn ceremonies with it, our static/js/webauthn.js talks to it as to any
key, and the server checks its real signatures. WebAuthn needs a secure context with a domain name, so
the site is opened as http://localhost:<port> and the relying party is pinned to it. axe-core checks
every page.
"""

import base64
import re

import pytest
from playwright.sync_api import expect

from devices.models import Registration, SecurityKeyDevice
from identity.models import AuditEvent

from .browser import DESKTOP, Accessibility, page_with_authenticator
from .test_browser_enrollment import _heading, _shot, _sign_in_with_password

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ALREADY_REGISTERED = "This security key is already registered."


def _page_with_security_key(browser, site):
    return page_with_authenticator(
        browser,
        site,
        DESKTOP,
        transport="usb",
        hasResidentKey=False,
        hasUserVerification=True,
        isUserVerified=True,
    )


def _credentials(cdp, authenticator) -> list[dict]:
    return cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]


def _base64url(standard_base64: str) -> str:
    return base64.urlsafe_b64encode(base64.b64decode(standard_base64)).rstrip(b"=").decode()


def _choose_security_key(page):
    _heading(page, "What kind of device will you use?")
    page.get_by_label("Security key").check()
    page.get_by_role("button", name="Continue").click()
    _heading(page, "Register your security key")


def test_security_key_in_chromium_register_sign_out_sign_in_and_refuse_it_twice(
    browser, site, make_user, password, tmp_path
):
    person = make_user("gh3456", first_name="Gil", last_name="Hart")
    page, cdp, authenticator = _page_with_security_key(browser, site)
    axe = Accessibility()

    def visit(name):
        axe.check(page, name)
        _shot(page, tmp_path, name)

    page.goto("/")
    _heading(page, "Sign in")
    _sign_in_with_password(page, person, password)
    _heading(page, "Set up two-step verification")
    page.get_by_role("link", name="Start setup").click()

    # Name the key, touch it, done.
    _choose_security_key(page)
    expect(page.get_by_text("Step 2 of 2 · Security key")).to_be_visible()
    visit("register-key")
    page.get_by_label("Name this key").fill("Blue key")
    page.get_by_role("button", name="Register security key").click()
    _heading(page, "Success: your security key is set up")
    expect(page.get_by_text("you can sign in by touching Blue key")).to_be_visible()
    visit("key-success")

    [credential] = _credentials(cdp, authenticator)
    registration = Registration.objects.select_related("security_key_device").get(user=person)
    assert registration.status == Registration.Status.ACTIVE and registration.label == "Blue key"
    device = registration.security_key_device
    assert device.confirmed and device.credential_id == _base64url(credential["credentialId"])

    page.get_by_role("navigation", name="Account").get_by_role("button", name="Sign out").click()
    _heading(page, "Sign in")

    # Sign in again: password, then the key.
    _sign_in_with_password(page, person, password)
    _heading(page, "Use your security key")
    expect(page.get_by_label("Code", exact=True)).to_have_count(0)
    visit("second-factor-key")
    page.get_by_role("button", name="Use your security key").click()
    _heading(page, "My devices")
    expect(page).to_have_url(re.compile(r"/devices/$"))
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="Blue key", exact=True))
    expect(row).to_contain_text("Security key")
    expect(row).to_contain_text("Touching the security key")
    visit("my-devices-key")
    device.refresh_from_db()
    [credential] = _credentials(cdp, authenticator)
    assert device.sign_count == credential["signCount"] > 0
    assert AuditEvent.objects.filter(
        action="signin.second_factor_ok", subject=person, details__factor="security_key"
    ).exists()

    # The same key again: excludeCredentials makes the browser refuse it, and the page says so.
    page.get_by_role("link", name="Add another device").click()
    page.get_by_role("link", name="Add another device").click()
    _choose_security_key(page)
    page.get_by_label("Name this key").fill("Blue key again")
    page.get_by_role("button", name="Register security key").click()
    status = page.locator("[data-webauthn-status]")
    expect(status).to_contain_text(ALREADY_REGISTERED)
    expect(page.get_by_role("button", name="Register security key")).to_be_enabled()
    _heading(page, "Register your security key")
    visit("register-key-refused")

    assert SecurityKeyDevice.objects.filter(user=person).count() == 1
    assert len(_credentials(cdp, authenticator)) == 1
    assert Registration.objects.filter(user=person, status=Registration.Status.PENDING).count() == 1

    assert axe.checked == ["register-key", "key-success", "second-factor-key", "my-devices-key", "register-key-refused"]
    axe.assert_clean()
