"""A new phone, a lost phone and backup codes as a person meets them: real Chromium against the live site.

The phone upgrade uses two secrets read back from the rendered QR codes by a real decoder
(zxing-cpp) and codes from an independent TOTP implementation (pyotp): the old phone keeps
working until a code from the new one confirms it, and stops working then (ACT-06).
axe-core checks every page, the refusals included.
"""

import re
import time

import pyotp
import pytest
from playwright.sync_api import expect

from devices import errors
from devices.models import AuthenticatorAppDevice, BackupCodeDevice, Registration
from identity import errors as identity_errors
from testsupport import fresh_code

from .browser import DESKTOP, PHONE, Accessibility, chromium, decode_qr, horizontal_overflow, parse_otpauth
from .helpers import add_app_device
from .test_browser_enrollment import (
    _heading,
    _page,
    _scan_and_activate,
    _shot,
    _sign_in_with_password,
    _wizard_to_activation,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEW_PHONE_HEADING = "Move Android phone to a new phone"
APP = "Android phone"


@pytest.fixture
def browser():
    with chromium() as browser:
        yield browser


def _sign_in_with_code(page, device_name, code):
    page.get_by_role("radio", name=device_name, exact=True).check()
    page.get_by_label("Code", exact=True).fill(code)
    page.get_by_role("button", name="Verify").click()


def _sign_out(page):
    page.get_by_role("navigation", name="Account").get_by_role("button", name="Sign out").click()
    _heading(page, "Sign in")


def _device_row(page, name):
    return page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=name, exact=True))


def _read_new_qr_code(page) -> dict:
    qr = page.locator("img#activation-qr")
    expect(qr).to_be_visible()
    # A property check, not a string for wait_for_function: the page's CSP (no 'unsafe-eval') refuses those.
    expect(qr).to_have_js_property("complete", True)
    return parse_otpauth(decode_qr(qr.screenshot()))


def _code_field_says(page, message):
    field = page.get_by_label("Code shown in the app")
    expect(page.get_by_text(message)).to_be_visible()
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_accessible_description(re.compile(re.escape(message)))
    expect(field).to_be_focused()


def test_act06_new_phone_in_chromium_old_phone_works_until_the_new_one_is_confirmed_and_not_after(
    browser, live_server, make_user, password, tmp_path, settings
):
    # The old phone's code is typed on purpose below; without the back-off the right code is taken straight after.
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    person = make_user("ij3456", first_name="Ida", last_name="Jones")
    page = _page(browser, live_server, DESKTOP)
    axe = Accessibility()

    def visit(name, on=page):
        axe.check(on, name)
        _shot(on, tmp_path, name)

    # Enroll the first phone through the wizard: secret A, read off the screen.
    page.goto("/")
    _heading(page, "Sign in")
    visit("sign-in")
    _sign_in_with_password(page, person, password)
    _wizard_to_activation(page, platform="Android phone", visit=visit)
    old_phone = _scan_and_activate(page, person)
    visit("success")
    registration = Registration.objects.get(user=person)
    old_device_pk = registration.app_device_id

    # "I got a new phone" in My devices.
    page.get_by_role("link", name="Go to My devices").click()
    _heading(page, "My devices")
    visit("my-devices")
    _device_row(page, "Android phone").get_by_role("link", name=re.compile(r"^I got a new phone")).click()
    _heading(page, NEW_PHONE_HEADING)
    expect(page.get_by_label("My old phone is lost or stolen: stop its codes now")).not_to_be_checked()
    visit("new-phone-start")
    page.get_by_role("button", name="Set up the new phone").click()

    # The new phone scans a new QR code: secret B, never the old one again.
    _heading(page, NEW_PHONE_HEADING)
    uri = _read_new_qr_code(page)
    visit("new-phone")
    assert (uri["type"], uri["account"], uri["issuer"]) == ("totp", person.username, settings.INSTITUTION_NAME)
    assert uri["secret"] != old_phone.secret
    new_phone = pyotp.TOTP(uri["secret"], digits=uri["digits"], interval=uri["period"])
    typed_key = page.locator("code.secret").inner_text()
    assert re.sub(r"\s", "", typed_key) == uri["secret"], "the key to type by hand differs from the QR code's"
    registration.refresh_from_db()
    assert registration.status == Registration.Status.REACTIVATING
    assert registration.app_device_id == old_device_pk

    # Until the new phone is confirmed, the old one still signs in (in another browser, say a laptop).
    laptop = _page(browser, live_server, DESKTOP)
    laptop.goto("/")
    _sign_in_with_password(laptop, person, password)
    _heading(laptop, "Enter a code from your device")
    expect(laptop.get_by_role("radio")).to_have_count(1)
    visit("second-factor-while-moving", on=laptop)
    # Activation spent this step's code (OTP-04); the next step's is within the one-step tolerance.
    _sign_in_with_code(laptop, APP, old_phone.at(time.time() + 30))
    _heading(laptop, "My devices")
    expect(_device_row(laptop, "Android phone")).to_contain_text("moving to a new phone")
    visit("my-devices-while-moving", on=laptop)
    laptop.context.close()

    # A code from the old phone does not confirm the new one, and the page says why.
    old_code = old_phone.now()
    assert old_code not in {new_phone.at(time.time() + offset) for offset in (-30, 0, 30)}
    page.get_by_label("Code shown in the app").fill(old_code)
    page.get_by_role("button", name="Confirm the new phone").click()
    _heading(page, NEW_PHONE_HEADING)
    _code_field_says(page, errors.REACTIVATION_WRONG_CODE)
    visit("new-phone-old-code-refused")
    registration.refresh_from_db()
    assert registration.status == Registration.Status.REACTIVATING
    assert registration.app_device_id == old_device_pk

    # The new phone's code confirms it.
    page.get_by_label("Code shown in the app").fill(new_phone.now())
    page.get_by_role("button", name="Confirm the new phone").click()
    _heading(page, "My devices")
    expect(page.get_by_text("Android phone now uses the app on your new phone.")).to_be_visible()
    expect(_device_row(page, "Android phone")).not_to_contain_text("moving to a new phone")
    visit("my-devices-after-move")
    registration.refresh_from_db()
    assert registration.status == Registration.Status.ACTIVE
    assert registration.app_device_id != old_device_pk
    retired = AuthenticatorAppDevice.objects.get(pk=old_device_pk)
    assert not retired.confirmed and retired.encrypted_secret == ""

    # Now the old phone's code is refused and the new phone's signs in.
    _sign_out(page)
    _sign_in_with_password(page, person, password)
    _heading(page, "Enter a code from your device")
    expect(page.get_by_role("radio")).to_have_count(1)
    # One moment for both codes: the new phone's is accepted for it, so the old one's is refused for its secret alone.
    moment = time.time() + 30
    assert old_phone.at(moment) != new_phone.at(moment)
    _sign_in_with_code(page, APP, old_phone.at(moment))
    _heading(page, "Enter a code from your device")
    # Not the generic "not right": the person hears that this phone's app was replaced.
    expect(page.get_by_text(re.compile("this phone's app was replaced"))).to_be_visible()
    expect(page.get_by_text(identity_errors.WRONG_CODE)).to_have_count(0)
    visit("second-factor-old-code-refused")
    _sign_in_with_code(page, APP, new_phone.at(moment))
    _heading(page, "My devices")
    expect(page).to_have_url(re.compile(r"/devices/$"))

    assert axe.checked == [
        "sign-in",
        "start",
        "device-type",
        "phone",
        "platform",
        "install",
        "activate",
        "success",
        "my-devices",
        "new-phone-start",
        "new-phone",
        "second-factor-while-moving",
        "my-devices-while-moving",
        "new-phone-old-code-refused",
        "my-devices-after-move",
        "second-factor-old-code-refused",
    ]
    axe.assert_clean()


def test_bnd05_lost_phone_in_chromium_stops_at_once_and_moves_to_removed_devices(
    browser, live_server, make_user, enroll, password, tmp_path
):
    person = make_user("kl7890")
    phone = enroll(person)
    tablet = add_app_device(person, kind="tablet", platform="android")
    page = _page(browser, live_server, PHONE)
    axe = Accessibility()
    overflowing = {}

    def visit(name):
        axe.check(page, name)
        _shot(page, tmp_path, f"phone-{name}")
        if (extra := horizontal_overflow(page)) > 0:
            overflowing[name] = extra

    # The phone is gone: sign in with the tablet.
    page.goto("/")
    _sign_in_with_password(page, person, password)
    _heading(page, "Enter a code from your device")
    visit("second-factor")
    _sign_in_with_code(page, tablet.display_name, fresh_code(tablet.app_device))
    _heading(page, "My devices")
    visit("my-devices")
    _device_row(page, phone.display_name).get_by_role("link", name=re.compile(r"^I lost it")).click()

    _heading(page, f"Report {phone.display_name} lost or stolen")
    visit("lost")
    page.get_by_role("button", name="It is lost: stop it now").click()

    _heading(page, "My devices")
    expect(page.get_by_text(f"{phone.display_name} can no longer be used to sign in.")).to_be_visible()
    usable = page.get_by_role("table", name="Devices you can use to sign in")
    expect(usable.get_by_role("rowheader")).to_have_text([tablet.display_name])
    removed = page.get_by_role("heading", name="Removed devices", level=2)
    expect(removed).to_be_visible()
    expect(page.locator("ul.history")).to_contain_text(phone.display_name)
    visit("my-devices-after-lost")
    phone.refresh_from_db()
    assert phone.status == Registration.Status.RETIRED
    assert not AuthenticatorAppDevice.objects.get(pk=phone.app_device_id).confirmed

    # At the next sign-in the lost phone is not offered at all.
    _sign_out(page)
    _sign_in_with_password(page, person, password)
    _heading(page, "Enter a code from your device")
    expect(page.get_by_role("radio")).to_have_count(1)
    expect(page.get_by_role("radio", name=tablet.display_name, exact=True)).to_have_count(1)

    assert axe.checked == ["second-factor", "my-devices", "lost", "my-devices-after-lost"]
    assert not overflowing, f"pages scroll sideways on a 390 px wide phone (extra CSS px): {overflowing}"
    axe.assert_clean()


def test_bnd06_backup_codes_in_chromium_made_once_and_each_signs_in_once(
    browser, live_server, make_user, enroll, password, tmp_path
):
    person = make_user("mn2345")
    phone = enroll(person)
    page = _page(browser, live_server, PHONE)
    axe = Accessibility()
    overflowing = {}

    def visit(name):
        axe.check(page, name)
        _shot(page, tmp_path, f"phone-{name}")
        if (extra := horizontal_overflow(page)) > 0:
            overflowing[name] = extra

    page.goto("/")
    _sign_in_with_password(page, person, password)
    _sign_in_with_code(page, phone.display_name, fresh_code(phone.app_device))
    _heading(page, "My devices")
    expect(page.get_by_text("No backup codes yet")).to_be_visible()
    visit("my-devices")
    page.get_by_role("link", name="Make backup codes").click()

    _heading(page, "Backup codes")
    expect(page.get_by_text("You have no backup codes yet.")).to_be_visible()
    visit("backup-codes")
    page.get_by_role("button", name="Make backup codes").click()

    _heading(page, "Your new backup codes")
    codes = page.get_by_role("list", name="Backup codes").get_by_role("listitem").all_inner_texts()
    visit("backup-codes-new")
    assert len(codes) == len(set(codes)) == 10
    page.get_by_role("link", name="I have saved them").click()
    _heading(page, "My devices")
    expect(page.get_by_text("10 of 10 backup codes left.")).to_be_visible()

    # Phone out of reach: a backup code signs in, typed in capitals as people copy them from paper.
    _sign_out(page)
    _sign_in_with_password(page, person, password)
    _heading(page, "Enter a code from your device")
    visit("second-factor")
    _sign_in_with_code(page, "Backup codes", codes[0].upper())
    _heading(page, "My devices")
    expect(page.get_by_text("9 of 10 backup codes left.")).to_be_visible()
    visit("my-devices-with-codes")
    page.get_by_role("link", name="Manage backup codes").click()
    _heading(page, "Backup codes")
    expect(page.get_by_text("9 of 10")).to_be_visible()
    visit("backup-codes-status")

    # The same code a second time is refused.
    _sign_out(page)
    _sign_in_with_password(page, person, password)
    _sign_in_with_code(page, "Backup codes", codes[0])
    _heading(page, "Enter a code from your device")
    expect(page.get_by_text(identity_errors.WRONG_CODE)).to_be_visible()
    visit("second-factor-code-used-twice")
    assert BackupCodeDevice.objects.get(user=person, confirmed=True).unused_count == 9

    assert axe.checked == [
        "my-devices",
        "backup-codes",
        "backup-codes-new",
        "second-factor",
        "my-devices-with-codes",
        "backup-codes-status",
        "second-factor-code-used-twice",
    ]
    assert not overflowing, f"pages scroll sideways on a 390 px wide phone (extra CSS px): {overflowing}"
    axe.assert_clean()
