"""The enrollment wizard as a person uses it: real Chromium against the live site.

The QR code is read back from the rendered image by a real decoder (zxing-cpp)
and the codes come from an independent TOTP implementation (pyotp), so the
test proves what an authenticator app would see. axe-core checks every page.
"""

import re
import time

import pyotp
import pytest
from django.conf import settings
from playwright.sync_api import expect

from devices.models import Registration

from .browser import DESKTOP, PHONE, Accessibility, chromium, decode_qr, horizontal_overflow, parse_otpauth

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE_NUMBER_TYPED = "617 555 0123"


@pytest.fixture
def browser():
    with chromium() as browser:
        yield browser


def _page(browser, live_server, device):
    context = browser.new_context(base_url=live_server.url, **device)
    context.set_default_timeout(15_000)
    return context.new_page()


def _shot(page, tmp_path, name):
    page.screenshot(path=tmp_path / f"{name}.png", full_page=True)


def _heading(page, text):
    expect(page.get_by_role("heading", level=1)).to_have_text(text)


def _sign_in_with_password(page, person, password):
    page.get_by_label("Institution ID").fill(person.username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def _wizard_to_activation(page, *, platform, visit):
    """From the wizard's start page to the activation page, calling ``visit(name)`` on each page."""
    _heading(page, "Set up two-step verification")
    visit("start")
    page.get_by_role("link", name="Start setup").click()

    _heading(page, "What kind of device will you use?")
    visit("device-type")
    page.get_by_label("Mobile phone").check()
    page.get_by_role("button", name="Continue").click()

    _heading(page, "Enter the phone number")
    visit("phone")
    page.get_by_label("Phone number").fill(PHONE_NUMBER_TYPED)
    page.get_by_label("This number is correct").check()
    page.get_by_role("button", name="Continue").click()

    _heading(page, "What kind of phone is it?")
    visit("platform")
    page.get_by_label(platform).check()
    page.get_by_role("button", name="Continue").click()

    _heading(page, "Install an authenticator app")
    visit("install")
    page.get_by_role("button", name="I have the app installed").click()

    _heading(page, "Activate the app")
    expect(page).to_have_url(re.compile(r"/enroll/\d+/activate/$"))
    visit("activate")


def _scan_and_activate(page, person):
    """Read the QR code off the screen as a phone camera would, then type the app's code."""
    qr = page.locator("img#activation-qr")
    expect(qr).to_be_visible()
    # A property check, not a string for wait_for_function: the page's CSP (no 'unsafe-eval') refuses those.
    expect(qr).to_have_js_property("complete", True)
    uri = parse_otpauth(decode_qr(qr.screenshot()))
    assert uri["type"] == "totp"
    assert uri["issuer"] == settings.INSTITUTION_NAME
    assert uri["label_issuer"] == settings.INSTITUTION_NAME
    assert uri["account"] == person.username
    assert (uri["digits"], uri["period"], uri["algorithm"]) == (6, 30, "SHA1")
    totp = pyotp.TOTP(uri["secret"], digits=uri["digits"], interval=uri["period"])
    page.get_by_label("Code shown in the app").fill(totp.now())
    page.get_by_role("button", name="Activate").click()
    _heading(page, "Success: your mobile phone is set up")
    return totp


def test_wizard_in_chromium_from_qr_code_to_signing_in_with_the_app(
    browser, live_server, make_user, password, tmp_path
):
    person = make_user("ab1234", first_name="Ana", last_name="Bell")
    page = _page(browser, live_server, DESKTOP)
    axe = Accessibility()

    progress = []

    def visit(name):
        axe.check(page, name)
        _shot(page, tmp_path, name)
        if page.locator(".progress").count():
            progress.append(page.locator(".progress").inner_text())

    page.goto("/")
    _heading(page, "Sign in")
    visit("sign-in")
    _sign_in_with_password(page, person, password)

    _wizard_to_activation(page, platform="Android phone", visit=visit)
    totp = _scan_and_activate(page, person)
    visit("success")
    # The end of the wizard asks for a name, with a distinct default filled in.
    expect(page.get_by_label("Device name")).to_have_value("Android phone")
    page.get_by_label("Device name").fill("Ana's phone")
    page.get_by_role("button", name="Save the name").click()
    _heading(page, "My devices")

    # Every step says where the person is, counted over the pages they actually see (no check of this number).
    assert progress == [
        f"Step {n} of 5" + what for n, what in zip(range(1, 6), [" · Device type"] + 4 * [" · Mobile phone"])
    ]
    registration = Registration.objects.get(user=person)
    assert registration.status == Registration.Status.ACTIVE
    assert (registration.kind, registration.platform) == (Registration.Kind.MOBILE, Registration.Platform.ANDROID)
    assert str(registration.phone_number) == "+16175550123"

    page.get_by_role("navigation", name="Account").get_by_role("button", name="Sign out").click()
    _heading(page, "Sign in")
    expect(page.get_by_text("You are signed out.")).to_be_visible()

    _sign_in_with_password(page, person, password)
    _heading(page, "Enter a code from your device")
    visit("second-factor")
    # Named as the person named it; the hint names only what they have (an app: no texts or calls).
    page.get_by_role("radio", name="Ana's phone", exact=True).check()
    expect(page.get_by_text("From your authenticator app.")).to_be_visible()
    expect(page.get_by_text("text or call")).to_have_count(0)
    # The current step's code was spent on activation and is never accepted twice (OTP-04);
    # the next step's code is within the one-step tolerance.
    page.get_by_label("Code", exact=True).fill(totp.at(time.time() + 30))
    page.get_by_role("button", name="Verify").click()

    _heading(page, "My devices")
    expect(page).to_have_url(re.compile(r"/devices/$"))
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="Ana's phone", exact=True))
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Android")
    expect(row).to_contain_text("23")
    expect(row).not_to_contain_text("555")
    visit("my-devices")

    assert axe.checked == [
        "sign-in",
        "start",
        "device-type",
        "phone",
        "platform",
        "install",
        "activate",
        "success",
        "second-factor",
        "my-devices",
    ]
    axe.assert_clean()


def test_wizard_fits_a_phone_screen(browser, live_server, make_user, password, tmp_path):
    person = make_user("cd5678")
    page = _page(browser, live_server, PHONE)
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

    _wizard_to_activation(page, platform="iPhone", visit=visit)
    _scan_and_activate(page, person)
    visit("success")
    page.get_by_role("link", name="Go to My devices").click()
    _heading(page, "My devices")
    visit("my-devices")

    assert not overflowing, f"pages scroll sideways on a 390 px wide phone (extra CSS px): {overflowing}"
    axe.assert_clean()


def test_invalid_phone_number_is_announced_on_the_field(browser, live_server, make_user, password, tmp_path):
    person = make_user("ef9012")
    page = _page(browser, live_server, DESKTOP)
    page.goto("/account/sign-in/")
    _sign_in_with_password(page, person, password)
    page.get_by_role("link", name="Start setup").click()
    page.get_by_label("Mobile phone").check()
    page.get_by_role("button", name="Continue").click()

    _heading(page, "Enter the phone number")
    field = page.get_by_label("Phone number")
    expect(field).not_to_have_attribute("aria-invalid", "true")
    field.fill("555 01")
    page.get_by_label("This number is correct").check()
    page.get_by_role("button", name="Continue").click()

    _heading(page, "Enter the phone number")
    expect(page).to_have_url(re.compile(r"/enroll/\d+/phone/$"))
    _shot(page, tmp_path, "phone-invalid")
    field = page.get_by_label("Phone number")
    message = "That does not look like a valid phone number. Check the digits and the country code."
    expect(page.get_by_text(message)).to_be_visible()
    expect(field).to_have_attribute("aria-invalid", "true")
    # The message is tied to the field, so a screen reader reads it with the field...
    expect(field).to_have_accessible_description(re.compile(re.escape(message)))
    # ...and the keyboard lands on the field to correct it.
    expect(field).to_be_focused()
    expect(field).to_have_value("555 01")

    axe = Accessibility()
    axe.check(page, "phone-invalid")
    axe.assert_clean()

    registration = Registration.objects.get(user=person)
    assert registration.phone_number in (None, "")
    assert registration.status == Registration.Status.PENDING

    field.fill("+1 (617) 555-0123")
    page.get_by_role("button", name="Continue").click()
    _heading(page, "What kind of phone is it?")
    registration.refresh_from_db()
    assert str(registration.phone_number) == "+16175550123"
