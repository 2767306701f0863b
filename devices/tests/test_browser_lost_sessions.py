"""Two browsers, one person, one phone reported lost: real Chromium against the live site (BND-05, BND-02).

axe-core checks the pages each browser sees around the loss.
"""

import re
import time

import pyotp
import pytest
from playwright.sync_api import expect

from devices.models import Registration
from testsupport import fresh_code

from .browser import DESKTOP, Accessibility, chromium, decode_qr, parse_otpauth
from .helpers import events
from .test_browser_enrollment import _heading, _page, _shot, _sign_in_with_password

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser():
    with chromium() as browser:
        yield browser


def _unused_code(device) -> str:
    """The app's next code not used yet: both browsers sign in with the one phone, each with its own code (OTP-04)."""
    deadline = time.monotonic() + 35
    while True:
        try:
            return fresh_code(device)
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def _sign_in_with_app(page, person, password, registration):
    page.goto("/")
    _sign_in_with_password(page, person, password)
    _heading(page, "Enter a code from your device")
    page.get_by_role("radio", name=registration.display_name, exact=True).check()
    page.get_by_label("Code", exact=True).fill(_unused_code(registration.app_device))
    page.get_by_role("button", name="Verify").click()
    _heading(page, "My devices")


def test_bnd05_after_the_last_phone_is_lost_another_open_browser_cannot_take_the_account_over(
    browser, live_server, make_user, enroll, password, tmp_path
):
    person = make_user("mn1357")
    phone = enroll(person, platform="android")
    other = _page(browser, live_server, DESKTOP)  # B: signed in earlier, somewhere else
    owner = _page(browser, live_server, DESKTOP)  # A: reports the phone lost
    axe = Accessibility()

    def visit(page, name):
        axe.check(page, name)
        _shot(page, tmp_path, name)

    _sign_in_with_app(other, person, password, phone)
    _sign_in_with_app(owner, person, password, phone)
    owner.get_by_role("row").filter(has=owner.get_by_role("rowheader", name=phone.display_name)).get_by_role(
        "link", name=re.compile(r"^I lost it")
    ).click()
    owner.get_by_role("button", name="It is lost: stop it now").click()
    _heading(owner, "Set up your new device now")
    visit(owner, "owner-after-lost")

    # B reloads My devices: signed out, and its password alone opens nothing.
    other.reload()
    _heading(other, "Sign in")
    visit(other, "other-signed-out")
    _sign_in_with_password(other, person, password)
    _heading(other, "Sign in")
    expect(other.get_by_text(re.compile("reported lost"))).to_be_visible()
    visit(other, "other-refused")

    # A, which reported the loss, can set up the new phone.
    owner.get_by_role("link", name="Set up my new device now").click()
    _heading(owner, "What kind of device will you use?")
    owner.get_by_label("Tablet").check()
    owner.get_by_role("button", name="Continue").click()
    expect(owner).to_have_url(re.compile(r"/enroll/\d+/platform/$"))
    visit(owner, "owner-platform")

    assert Registration.objects.filter(user=person, status=Registration.Status.PENDING).count() == 1
    lost = events("device.reported_lost").get()
    assert lost.details["sessions_ended"] == 1
    assert not events("device.bound").filter(sequence__gt=lost.sequence).exists()
    assert axe.checked == ["owner-after-lost", "other-signed-out", "other-refused", "owner-platform"]
    axe.assert_clean()


def test_bnd05_removing_the_tablet_just_activated_keeps_the_person_signed_in(
    browser, live_server, make_user, enroll, password, tmp_path
):
    """Activating a device verifies the session with it; removing that device then keeps the person signed in, on
    their devices page."""
    person = make_user("rt9753")
    first = enroll(person, kind="tablet", platform="android")
    page = _page(browser, live_server, DESKTOP)
    axe = Accessibility()
    _sign_in_with_app(page, person, password, first)

    page.goto("/enroll/device-type/")
    page.get_by_label("Tablet").check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_label(re.compile(r"^Android")).check()
    page.get_by_role("button", name="Continue").click()
    page.get_by_role("button", name="I have the app installed").click()
    _heading(page, "Activate the app")
    qr = page.locator("img#activation-qr")
    expect(qr).to_have_js_property("complete", True)
    uri = parse_otpauth(decode_qr(qr.screenshot()))
    page.get_by_label("Code shown in the app").fill(pyotp.TOTP(uri["secret"]).now())
    page.get_by_role("button", name="Activate").click()
    _heading(page, re.compile(r"^Success"))
    last = Registration.objects.filter(user=person).latest("activated_at")
    assert last.pk != first.pk and last.app_device.confirmed

    page.goto("/devices/")
    page.locator(f'a[href="/devices/{last.pk}/remove/"]').click()
    page.get_by_role("button", name="Remove device").click()

    _heading(page, "My devices")  # not the sign-in page
    expect(page.get_by_text(f"{last.display_name} was removed.")).to_be_visible()
    axe.check(page, "my-devices-after-removal")
    page.reload()
    _heading(page, "My devices")
    last.refresh_from_db()
    assert last.status == Registration.Status.RETIRED
    axe.assert_clean()
