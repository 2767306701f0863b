"""The emailed links as a person meets them: real Chromium, the link read from the email as sent.

The email goes out through the outbox and Django's mail backend; the link in its body is opened in a second
browser context (the phone), which shares nothing with the first (the computer). The secret is read from the
page the phone sees and the codes come from an independent TOTP implementation (pyotp). axe-core checks every
page of both browsers.
"""

import re
import time

import pyotp
import pytest
from django.conf import settings
from django.core import mail
from playwright.sync_api import expect

from devices import errors, services
from devices.models import Registration

from .browser import DESKTOP, PHONE, Accessibility, chromium, parse_otpauth
from .helpers import LINK_RE, events, pending_app_registration
from .test_browser_enrollment import _heading, _page, _shot, _sign_in_with_password

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser():
    with chromium() as browser:
        yield browser


def _not_a_code_of(app) -> str:
    near = {app.at(time.time() + 30 * step) for step in (-1, 0, 1, 2)}
    return next(code for code in ("000000", "111111", "222222", "333333", "444444") if code not in near)


def _link_from_last_email(to: str) -> str:
    message = mail.outbox[-1]
    assert message.to == [to]
    url = LINK_RE.search(message.body).group(1)
    assert url.startswith(settings.SITE_URL)
    return url


class RequestLog:
    """Every URL the browser asked the server for (what an access log records), and the forms' Origin header."""

    def __init__(self, page):
        self.urls = []
        self.posts = []
        page.on("request", self._request)

    def _request(self, request):
        self.urls.append(request.url)
        if request.method == "POST":
            self.posts.append((request.url, request.header_value("origin")))


def _open_link_and_give_password(phone_page, url, live_server, password, log, visit):
    # The link is built from SITE_URL; the test server listens elsewhere, so go to the same path there.
    phone_page.goto(live_server.url + url.removeprefix(settings.SITE_URL))
    _heading(phone_page, "Activate your authenticator app")
    expect(phone_page).to_have_url(live_server.url + "/activate/")  # the token left the address bar
    token = url.rpartition("#")[2]
    # OTP-09: the token is after "#", so no request line (what an access log records) ever holds it.
    assert log.urls and not [u for u in log.urls if token in u]
    visit("password")
    phone_page.get_by_label("Password").fill(password)
    phone_page.get_by_role("button", name="Continue").click()


def test_act02_activation_link_from_the_email_works_in_a_second_chromium(
    browser, live_server, make_user, password, mailoutbox, tmp_path, settings
):
    """The walk "enroll a tablet by emailed link, on a second browser", end to end."""
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # a wrong code is typed on purpose; the right one follows at once
    person = make_user("tb5678", first_name="Tara", last_name="Bloom")
    computer = _page(browser, live_server, DESKTOP)
    tablet = _page(browser, live_server, PHONE)
    log = RequestLog(tablet)
    axe = Accessibility()

    def visit_on(page, prefix):
        def visit(name):
            axe.check(page, f"{prefix}-{name}")
            _shot(page, tmp_path, f"{prefix}-{name}")

        return visit

    at_computer, at_tablet = visit_on(computer, "computer"), visit_on(tablet, "tablet")

    computer.goto("/")
    _sign_in_with_password(computer, person, password)
    _heading(computer, "Set up two-step verification")
    computer.get_by_role("link", name="Start setup").click()
    computer.get_by_label("Tablet").check()
    computer.get_by_role("button", name="Continue").click()
    computer.get_by_label(re.compile(r"^Android")).check()
    computer.get_by_role("button", name="Continue").click()
    computer.get_by_role("button", name="I have the app installed").click()
    _heading(computer, "Activate the app")
    at_computer("activate")
    computer.get_by_role("button", name="Email me an activation link instead").click()
    expect(computer.get_by_text("We emailed you an activation link.")).to_be_visible()
    at_computer("link-sent")

    url = _link_from_last_email(person.email)
    _open_link_and_give_password(tablet, url, live_server, password, log, at_tablet)
    _heading(tablet, "Add the account to your app")
    at_tablet("ready")
    # Chromium posted the password form with the site's origin, not "null" (the CSRF check refuses null).
    assert log.posts == [(live_server.url + "/activate/", live_server.url)] * 2  # the token, then the password
    uri = parse_otpauth(tablet.locator("#otpauth-link").get_attribute("href"))
    assert (uri["issuer"], uri["account"]) == (settings.INSTITUTION_NAME, person.username)
    app = pyotp.TOTP(uri["secret"], digits=uri["digits"], interval=uri["period"])

    # A wrong code first: the refusal comes after a redirect, so a reload (or Back) resubmits nothing.
    field = computer.get_by_label("Code shown in the app")
    field.fill(_not_a_code_of(app))
    with computer.expect_navigation() as shown:
        computer.get_by_role("button", name="Activate").click()
    assert shown.value.request.method == "GET" and shown.value.request.redirected_from.method == "POST"
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(computer.get_by_text(errors.WRONG_CODE)).to_be_visible()
    at_computer("wrong-code")
    computer.reload()
    expect(computer.get_by_text(errors.WRONG_CODE)).to_have_count(0)
    assert events("enrollment.code_rejected").count() == 1

    field.fill(app.now())
    computer.get_by_role("button", name="Activate").click()
    _heading(computer, re.compile(r"^Success"))
    at_computer("success")

    registration = Registration.objects.get(user=person)
    assert registration.status == Registration.Status.ACTIVE and registration.kind == Registration.Kind.TABLET
    assert registration.app_device.confirmed
    # The link worked once: opened again, it is refused.
    again = _page(browser, live_server, PHONE)
    again.goto(live_server.url + url.removeprefix(settings.SITE_URL))
    _heading(again, "This link cannot be used")
    axe.check(again, "tablet-link-used")

    assert axe.checked == [
        "computer-activate",
        "computer-link-sent",
        "tablet-password",
        "tablet-ready",
        "computer-wrong-code",
        "computer-success",
        "tablet-link-used",
    ]
    axe.assert_clean()


def test_act02_help_desk_recovery_link_from_the_email_works_in_chromium(
    browser,
    live_server,
    make_user,
    enroll,
    password,
    mailoutbox,
    tmp_path,
):
    person = make_user("rc2468", first_name="Rui", last_name="Costa")
    phone = enroll(person, platform="android")
    desk = make_user("desk9", is_staff=True)
    services.send_recovery_link(person, actor=desk, registration=phone)
    url = _link_from_last_email(person.email)
    new_phone = _page(browser, live_server, PHONE)
    log = RequestLog(new_phone)
    axe = Accessibility()

    def visit(name):
        axe.check(new_phone, name)
        _shot(new_phone, tmp_path, name)

    _open_link_and_give_password(new_phone, url, live_server, password, log, visit)
    _heading(new_phone, f"Move {phone.display_name} to a new phone")
    visit("new-phone")
    assert log.posts == [(live_server.url + "/activate/", live_server.url)] * 2  # the token, then the password
    # The key as the person would type it into the app on the new phone (the QR code is read in other tests).
    key = new_phone.locator("code.secret").inner_text().replace(" ", "")
    app = pyotp.TOTP(key)
    new_phone.get_by_label("Code shown in the app").fill(app.now())
    new_phone.get_by_role("button", name="Confirm the new phone").click()
    _heading(new_phone, "My devices")
    expect(new_phone.get_by_text("now uses the app on your new phone")).to_be_visible()
    visit("my-devices")

    phone.refresh_from_db()
    assert phone.status == Registration.Status.ACTIVE and phone.app_device.confirmed
    assert phone.app_device.secret_bytes() == app.byte_secret()
    assert axe.checked == ["password", "new-phone", "my-devices"]
    axe.assert_clean()


def test_otp09_without_javascript_the_link_says_what_to_do(browser, live_server, make_user, enroll, tmp_path):
    page = browser.new_context(base_url=live_server.url, java_script_enabled=False, **PHONE).new_page()
    page.goto("/activate/#" + "A" * 43)
    _heading(page, "Opening your activation link")
    expect(page.get_by_text("This page needs JavaScript to open the link.")).to_be_visible()
    _shot(page, tmp_path, "no-javascript")
    axe = Accessibility()
    with_script = _page(browser, live_server, PHONE)
    with_script.goto("/activate/#part-of-a")  # cut short when copied
    expect(with_script.get_by_text("This address is not a whole activation link.")).to_be_visible()
    axe.check(with_script, "incomplete-link")
    axe.assert_clean()


def test_otp09_a_newer_link_opened_where_an_older_one_was_left_open_works(
    browser, live_server, make_user, password, mailoutbox, settings
):
    settings.ACTIVATION_LINK_RESEND_SECONDS = 0
    person = make_user("nl1122")
    registration = pending_app_registration(person)
    services.send_activation_link(registration, actor=person)
    first = _link_from_last_email(person.email)
    tablet = browser.new_context(base_url=live_server.url, **PHONE)
    tab = tablet.new_page()
    tab.goto(live_server.url + first.removeprefix(settings.SITE_URL))
    _heading(tab, "Activate your authenticator app")  # left there, and a new link asked for
    services.send_activation_link(registration, actor=person)
    second = _link_from_last_email(person.email)
    assert second != first
    axe = Accessibility()

    # Tapped in the email app: a new tab of the same browser, whose session still holds the first link.
    new_tab = tablet.new_page()
    new_tab.goto(live_server.url + second.removeprefix(settings.SITE_URL))
    _heading(new_tab, "Activate your authenticator app")
    axe.check(new_tab, "password-for-the-newer-link")
    new_tab.get_by_label("Password").fill(password)
    new_tab.get_by_role("button", name="Continue").click()
    _heading(new_tab, "Add the account to your app")

    # Opened in the tab still showing /activate/: only the part after "#" changes, and it is still taken.
    services.send_activation_link(registration, actor=person)
    third = _link_from_last_email(person.email)
    tab.goto(live_server.url + third.removeprefix(settings.SITE_URL))
    _heading(tab, "Activate your authenticator app")
    expect(tab).to_have_url(live_server.url + "/activate/")
    tab.get_by_label("Password").fill(password)
    tab.get_by_role("button", name="Continue").click()
    _heading(tab, "Add the account to your app")
    axe.assert_clean()
