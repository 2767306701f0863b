"""Phone numbers as a person uses them: real Chromium against the live site.

Codes reach the test the way they reach a person: through the gateway, here
the recording one that stands in for the provider. The live server runs in this
process with tasks run eagerly, so a text or call is recorded by the time the
page that asked for it has loaded. axe-core checks every page.
"""

import re

import pytest
from playwright.sync_api import expect

from devices import errors
from devices.models import Registration

from .browser import DESKTOP, PHONE, Accessibility, chromium, horizontal_overflow
from .fakes import RecordingGateway
from .test_browser_enrollment import (
    _heading,
    _page,
    _scan_and_activate,
    _shot,
    _sign_in_with_password,
    _wizard_to_activation,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LANDLINE_TYPED = "(617) 555-0199"
LANDLINE = "+16175550199"
LANDLINE_MASKED = "+1********99"
MOBILE = "+16175550123"
MOBILE_MASKED = "+1********23"


@pytest.fixture
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture
def gateway(recording_gateway, settings):
    # Enrollment and sign-in each ask for a code within seconds; the resend pause is not under test here.
    settings.PHONE_RESEND_SECONDS = 0
    return recording_gateway


def _sent_to(number):
    return [d for d in RecordingGateway.delivered if d.number == number]


def _wrong(code: str) -> str:
    return "".join(str((int(digit) + 1) % 10) for digit in code)


def _row(page, name):
    return page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=name, exact=True))


def test_landline_enrolled_by_a_call_code_then_signing_in_with_a_call(
    browser, live_server, make_user, password, gateway, tmp_path
):
    person = make_user("gh3456", first_name="Gus", last_name="Hale")
    page = _page(browser, live_server, DESKTOP)
    axe = Accessibility()

    def visit(name):
        axe.check(page, name)
        _shot(page, tmp_path, name)

    page.goto("/")
    _heading(page, "Sign in")
    _sign_in_with_password(page, person, password)
    _heading(page, "Set up two-step verification")
    page.get_by_role("link", name="Start setup").click()

    _heading(page, "What kind of device will you use?")
    page.get_by_label("Landline").check()
    page.get_by_role("button", name="Continue").click()

    _heading(page, "Enter the phone number")
    visit("phone")
    page.get_by_label("Phone number").fill(LANDLINE_TYPED)
    page.get_by_label("This number is correct").check()
    page.get_by_role("button", name="Continue").click()

    _heading(page, "Prove this number is yours")
    expect(page).to_have_url(re.compile(r"/enroll/\d+/verify-phone/$"))
    visit("verify-phone")
    assert not _sent_to(LANDLINE), "nothing is sent before the person asks"
    # A landline cannot take texts, so the only way offered is a call.
    expect(page.get_by_role("button", name="Text me a code")).to_have_count(0)
    page.get_by_role("button", name="Call me with a code").click()

    expect(page.get_by_text(f"We are calling {LANDLINE_MASKED} with a 6-digit code.")).to_be_visible()
    visit("verify-phone-called")
    (call,) = _sent_to(LANDLINE)
    assert call.channel == "voice"
    field = page.get_by_label("6-digit code from the text or call")

    field.fill(_wrong(call.code))
    page.get_by_role("button", name="Verify").click()
    _heading(page, "Prove this number is yours")
    field = page.get_by_label("6-digit code from the text or call")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_accessible_description(re.compile(re.escape(errors.PHONE_WRONG_CODE)))
    visit("verify-phone-wrong-code")
    registration = Registration.objects.get(user=person)
    assert registration.status == Registration.Status.PENDING

    field.fill(call.code)
    page.get_by_role("button", name="Verify").click()
    _heading(page, "Success: your landline is set up")
    visit("success")
    # Calls are all a landline offers, and they are on already: nothing more to turn on.
    expect(page.get_by_role("link", name="Turn on codes by text or call")).to_have_count(0)

    registration.refresh_from_db()
    assert registration.status == Registration.Status.ACTIVE
    assert registration.kind == Registration.Kind.LANDLINE
    assert str(registration.phone_number) == LANDLINE
    assert registration.app_device is None
    assert registration.phone_device.confirmed and not registration.phone_device.can_text

    page.get_by_role("navigation", name="Account").get_by_role("button", name="Sign out").click()
    _heading(page, "Sign in")
    _sign_in_with_password(page, person, password)

    _heading(page, "Enter a code from your device")
    visit("second-factor")
    # Only a phone to call: the page does not send the person looking for an app.
    expect(page.get_by_text("Ask for a code below, then type the 6-digit code we send to your phone.")).to_be_visible()
    # The code field's hint names only what this person has: a call, no app.
    expect(page.get_by_text("authenticator app", exact=False)).to_have_count(0)
    expect(page.get_by_text("From the text or call you asked for.")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile(r"^Text "))).to_have_count(0)
    page.get_by_role("button", name=f"Call {LANDLINE_MASKED}", exact=True).click()
    expect(page.get_by_text(f"We are calling {LANDLINE_MASKED} with a 6-digit code.")).to_be_visible()
    visit("second-factor-called")
    _, sign_in_call = _sent_to(LANDLINE)
    assert sign_in_call.channel == "voice"
    page.get_by_label("Code", exact=True).fill(sign_in_call.code)
    page.get_by_role("button", name="Verify").click()

    _heading(page, "My devices")
    expect(page).to_have_url(re.compile(r"/devices/$"))
    row = _row(page, "Landline")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(f"Calls to {LANDLINE_MASKED}")
    expect(row).not_to_contain_text("Authenticator app")
    expect(row).not_to_contain_text("555")
    expect(row.get_by_role("link", name=re.compile("Get codes by text or call"))).to_have_count(0)
    visit("my-devices")
    registration.phone_device.refresh_from_db()
    assert registration.phone_device.last_used_at is not None

    assert axe.checked == [
        "phone",
        "verify-phone",
        "verify-phone-called",
        "verify-phone-wrong-code",
        "success",
        "second-factor",
        "second-factor-called",
        "my-devices",
    ]
    axe.assert_clean()


def test_mobile_turns_on_codes_by_text_right_after_setup_on_a_phone_screen(
    browser, live_server, make_user, password, gateway, tmp_path
):
    person = make_user("ij7890")
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
    _sign_in_with_password(page, person, password)
    # A number new here needs no check in the wizard: activating the app proves the phone.
    _wizard_to_activation(page, platform="iPhone", visit=lambda name: None)
    _scan_and_activate(page, person)
    visit("success")
    assert not _sent_to(MOBILE)

    page.get_by_role("link", name="Go to My devices").click()
    _heading(page, "My devices")
    row = _row(page, "iPhone")
    expect(row).to_contain_text("Authenticator app")
    expect(row).to_contain_text(f"Not yet by text or call to {MOBILE_MASKED}.")
    registration = Registration.objects.get(user=person)
    expect(row.get_by_role("link", name=re.compile("^Get codes by text or call"))).to_have_attribute(
        "href", f"/devices/{registration.pk}/phone-codes/"
    )
    visit("my-devices-before")
    page.go_back()

    _heading(page, "Success: your mobile phone is set up")
    page.get_by_role("link", name="Turn on codes by text or call").click()
    # Just verified with the app, so no fresh code is asked for first (BND-01 is satisfied).
    _heading(page, "Get codes by text or call")
    expect(page).to_have_url(f"{live_server.url}/devices/{registration.pk}/phone-codes/")
    visit("phone-codes")
    page.get_by_role("button", name="Text me a code").click()

    expect(page.get_by_text(f"We texted {MOBILE_MASKED} with a 6-digit code.")).to_be_visible()
    visit("phone-codes-texted")
    (text,) = _sent_to(MOBILE)
    assert text.channel == "sms"
    page.get_by_label("6-digit code from the text or call").fill(text.code)
    page.get_by_role("button", name="Verify").click()

    _heading(page, "My devices")
    expect(page.get_by_text(f"Codes by text and call to {MOBILE_MASKED} are on.")).to_be_visible()
    row = _row(page, "iPhone")
    expect(row).to_contain_text("Authenticator app")
    expect(row).to_contain_text(f"Texts and calls to {MOBILE_MASKED}")
    expect(row.get_by_role("link", name=re.compile("Get codes by text or call"))).to_have_count(0)
    visit("my-devices-after")

    registration.refresh_from_db()
    assert registration.phone_verified_at is not None
    assert registration.phone_device.confirmed and registration.phone_device.can_text
    assert str(registration.phone_device.number) == MOBILE

    assert not overflowing, f"pages scroll sideways on a 390 px wide phone (extra CSS px): {overflowing}"
    assert axe.checked == [
        "success",
        "my-devices-before",
        "phone-codes",
        "phone-codes-texted",
        "my-devices-after",
    ]
    axe.assert_clean()


def test_the_directory_mobile_is_offered_masked_then_proven_by_a_code_like_a_typed_one(
    browser, live_server, make_user, password, gateway, tmp_path
):
    person = make_user("kl1234", first_name="Kim", last_name="Lo", directory_mobile=LANDLINE)
    page = _page(browser, live_server, DESKTOP)
    axe = Accessibility()

    def visit(name):
        axe.check(page, name)
        _shot(page, tmp_path, f"directory-{name}")

    page.goto("/")
    _sign_in_with_password(page, person, password)
    page.get_by_role("link", name="Start setup").click()
    page.get_by_label("Landline").check()
    page.get_by_role("button", name="Continue").click()

    _heading(page, "Enter the phone number")
    expect(page.get_by_text(f"Is this your number? {LANDLINE_MASKED}")).to_be_visible()
    expect(page.locator("body")).not_to_contain_text("555")
    visit("phone-offer")
    page.get_by_role("button", name="Use this number").click()

    _heading(page, "Enter the phone number")
    expect(page.get_by_label("Phone number")).to_have_count(0)
    expect(page.get_by_text(f"Phone number: {LANDLINE_MASKED}")).to_be_visible()
    visit("phone-offer-taken")
    page.get_by_label("This number is correct").check()
    page.get_by_role("button", name="Continue").click()

    _heading(page, "Prove this number is yours")
    assert not _sent_to(LANDLINE)
    page.get_by_role("button", name="Call me with a code").click()
    expect(page.get_by_text(f"We are calling {LANDLINE_MASKED} with a 6-digit code.")).to_be_visible()
    (call,) = _sent_to(LANDLINE)
    page.get_by_label("6-digit code from the text or call").fill(call.code)
    page.get_by_role("button", name="Verify").click()
    _heading(page, "Success: your landline is set up")

    registration = Registration.objects.get(user=person)
    assert registration.status == Registration.Status.ACTIVE and str(registration.phone_number) == LANDLINE
    assert registration.phone_device.confirmed
    assert axe.checked == ["phone-offer", "phone-offer-taken"]
    axe.assert_clean()


def test_a_refused_number_is_said_beside_it_and_takes_the_focus(browser, live_server, make_user, password, tmp_path):
    """A number the site refuses (a country it cannot call) is said at the number, which keeps the focus; taken from
    the directory, where no field is shown, it is said in the paragraph that shows the number."""
    person = make_user("kl1235", first_name="Kim", last_name="Lo", directory_mobile="+442079460958")
    page = _page(browser, live_server, DESKTOP)
    axe = Accessibility()
    page.goto("/")
    _sign_in_with_password(page, person, password)
    page.get_by_role("link", name="Start setup").click()
    page.get_by_label("Landline").check()
    page.get_by_role("button", name="Continue").click()

    page.get_by_role("button", name="Use this number").click()
    page.get_by_label("This number is correct").check()
    page.get_by_role("button", name="Continue").click()

    expect(page.get_by_role("alert")).to_have_text(errors.PHONE_COUNTRY_NOT_ALLOWED)
    expect(page.get_by_role("link", name="Enter a different number")).to_be_focused()
    expect(page.get_by_role("link", name="Enter a different number")).to_have_accessible_description(
        errors.PHONE_COUNTRY_NOT_ALLOWED
    )
    axe.check(page, "phone-offer-refused")
    _shot(page, tmp_path, "phone-offer-refused")

    page.get_by_role("link", name="Enter a different number").click()
    page.get_by_label("Phone number").fill("+44 20 7946 0958")
    page.get_by_label("This number is correct").check()
    page.get_by_role("button", name="Continue").click()

    field = page.get_by_label("Phone number")
    expect(field).to_be_focused()
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_accessible_description(re.compile(re.escape(errors.PHONE_COUNTRY_NOT_ALLOWED)))
    axe.check(page, "phone-typed-refused")
    _shot(page, tmp_path, "phone-typed-refused")
    assert axe.checked == ["phone-offer-refused", "phone-typed-refused"]
    axe.assert_clean()
