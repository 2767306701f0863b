"""What a person reads around a lost device, in real Chromium with axe-core on every page.

Two browsers: the person reports their only tablet lost in one, while a sign-in waits at the code page in the other.
"""

import re

import pytest
from playwright.sync_api import expect

from testsupport import fresh_code

from .browser import DESKTOP, PHONE, Accessibility, chromium
from .helpers import add_app_device
from .test_browser_enrollment import _heading, _page, _shot, _sign_in_with_password

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HELP_DESK = "the IT help desk on 555-0100"


@pytest.fixture
def browser():
    with chromium() as browser:
        yield browser


def test_last_device_lost_in_chromium_the_pages_say_what_to_do(
    browser, live_server, make_user, password, tmp_path, settings
):
    settings.HELP_DESK_CONTACT = HELP_DESK
    person = make_user("lw1111")
    tablet = add_app_device(person, kind="tablet", platform="android")
    page = _page(browser, live_server, PHONE)
    waiting = _page(browser, live_server, DESKTOP)
    axe = Accessibility()

    def visit(name, on=page):
        axe.check(on, name)
        _shot(on, tmp_path, name)

    # A sign-in waits at the code page in another browser.
    waiting.goto("/")
    _sign_in_with_password(waiting, person, password)
    _heading(waiting, "Enter a code from your device")

    page.goto("/")
    _sign_in_with_password(page, person, password)
    page.get_by_role("radio", name="Android tablet", exact=True).check()
    page.get_by_label("Code", exact=True).fill(fresh_code(tablet.app_device))
    page.get_by_role("button", name="Verify").click()
    _heading(page, "My devices")
    page.get_by_role("link", name=re.compile(r"^I lost it")).click()

    _heading(page, "Report Android tablet lost or stolen")
    # A device with the app: the page points to the new-tablet choice that keeps the old one's number working.
    expect(page.get_by_role("main")).to_contain_text("My old phone is lost or stolen")
    expect(page.get_by_role("link", name="I got a new tablet")).to_have_attribute(
        "href", f"/devices/{tablet.pk}/new-phone/"
    )
    visit("report-lost")
    page.get_by_role("button", name="It is lost: stop it now").click()

    # The page after it: leaving means calling the help desk; the new device can be set up now.
    _heading(page, "Set up your new device now")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("a password alone will not open the setup again")
    expect(alert).to_contain_text(HELP_DESK)
    expect(page.get_by_role("link", name="Set up my new device now")).to_have_attribute("href", "/enroll/device-type/")
    visit("after-lost")

    # The waiting sign-in: no "ask for a code below" with nothing below, but what to do.
    waiting.reload()
    _heading(waiting, "Enter a code from your device")
    expect(waiting.get_by_text("Ask for a code below")).to_have_count(0)
    expect(waiting.get_by_role("alert")).to_contain_text("You have no device left to sign in with")
    expect(waiting.get_by_role("alert")).to_contain_text(HELP_DESK)
    expect(waiting.get_by_role("link", name="Back to sign in")).to_be_visible()
    visit("code-page-after-lost", on=waiting)

    assert axe.checked == ["report-lost", "after-lost", "code-page-after-lost"]
    axe.assert_clean()
