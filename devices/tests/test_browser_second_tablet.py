"""A second Android tablet in real Chromium: tablet words, "Step n of N" on every step, a distinct name asked for.

axe-core checks every page; the QR code is read off the screen and the code comes from pyotp.
"""

import pyotp
import pytest
from django.utils import timezone
from playwright.sync_api import expect

from devices.models import Registration
from testsupport import fresh_code

from .browser import PHONE, Accessibility, chromium, decode_qr, horizontal_overflow, parse_otpauth
from .helpers import add_app_device
from .test_browser_enrollment import _heading, _page, _shot, _sign_in_with_password

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser():
    with chromium() as browser:
        yield browser


def test_second_android_tablet_in_chromium_counts_its_steps_and_gets_a_name_of_its_own(
    browser, live_server, make_user, password, tmp_path
):
    person = make_user("tb4321")
    first = add_app_device(person, kind="tablet", platform="android")
    assert first.display_name == "Android tablet"
    page = _page(browser, live_server, PHONE)
    axe = Accessibility()
    overflowing = {}
    progress = []

    def visit(name):
        axe.check(page, name)
        _shot(page, tmp_path, name)
        if (extra := horizontal_overflow(page)) > 0:
            overflowing[name] = extra
        if page.locator(".progress").count():
            progress.append(page.locator(".progress").inner_text())

    page.goto("/")
    _sign_in_with_password(page, person, password)
    _heading(page, "Enter a code from your device")
    page.get_by_role("radio", name="Android tablet", exact=True).check()
    page.get_by_label("Code", exact=True).fill(fresh_code(first.app_device))
    page.get_by_role("button", name="Verify").click()
    _heading(page, "My devices")
    page.get_by_role("link", name="Add another device").click()
    page.get_by_role("link", name="Add another device").click()

    _heading(page, "What kind of device will you use?")
    expect(page.locator(".progress")).to_have_text("Step 1 of 5 · Device type")  # a mobile phone, preselected
    page.get_by_label("Tablet", exact=True).check()
    # The count follows the choice: a tablet's setup shows four pages.
    expect(page.locator(".progress")).to_have_text("Step 1 of 4 · Device type")
    visit("device-type")
    page.get_by_role("button", name="Continue").click()

    _heading(page, "What kind of tablet is it?")
    visit("platform")
    group = page.get_by_role("group", name="What kind of tablet is it?")
    expect(group.get_by_role("radio")).to_have_count(3)
    for label in ("iPad", "Android tablet", "Other"):
        expect(group.get_by_role("radio", name=label, exact=True)).to_have_count(1)
    expect(page.get_by_role("main")).not_to_contain_text("phone")
    group.get_by_role("radio", name="Android tablet", exact=True).check()
    page.get_by_role("button", name="Continue").click()

    _heading(page, "Install an authenticator app")
    visit("install")
    expect(page.get_by_role("main")).to_contain_text("Google Authenticator")
    page.get_by_role("button", name="I have the app installed").click()

    _heading(page, "Activate the app")
    visit("activate")
    expect(page.get_by_role("main")).not_to_contain_text("internet access")
    qr = page.locator("img#activation-qr")
    expect(qr).to_have_js_property("complete", True)
    uri = parse_otpauth(decode_qr(qr.screenshot()))
    page.get_by_label("Code shown in the app").fill(pyotp.TOTP(uri["secret"]).now())
    page.get_by_role("button", name="Activate").click()

    _heading(page, "Success: your tablet is set up")
    visit("success")
    name = page.get_by_label("Device name")
    expect(name).to_have_value("Android tablet 2")
    page.get_by_role("button", name="Save the name").click()

    _heading(page, "My devices")
    visit("my-devices")
    rows = page.get_by_role("table", name="Devices you can use to sign in").get_by_role("rowheader")
    expect(rows).to_have_count(2)
    assert sorted(rows.all_inner_texts()) == ["Android tablet", "Android tablet 2"]
    second = Registration.objects.get(user=person, label="Android tablet 2")
    page.get_by_role("link", name="Remove Android tablet 2").click()
    _heading(page, "Remove Android tablet 2?")
    added = timezone.localtime(second.activated_at).strftime("%-d %b %Y")
    expect(page.get_by_text(f"Tablet (Android tablet), added {added}.")).to_be_visible()
    visit("remove")

    assert progress == [
        "Step 1 of 4 · Device type",
        "Step 2 of 4 · Tablet",
        "Step 3 of 4 · Tablet",
        "Step 4 of 4 · Tablet",
    ]
    assert axe.checked == ["device-type", "platform", "install", "activate", "success", "my-devices", "remove"]
    assert not overflowing, f"pages scroll sideways on a 390 px wide phone (extra CSS px): {overflowing}"
    axe.assert_clean()
