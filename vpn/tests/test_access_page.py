"""The self-service VPN access request: status, reason, the note about devices; in Chromium with axe-core."""

import pytest
from playwright.sync_api import expect

from devices.tests.browser import PHONE, Accessibility, chromium, horizontal_overflow
from identity.models import AuditEvent, User

pytestmark = pytest.mark.django_db

URL = "/vpn-access/"


def test_a_person_requests_vpn_access_with_a_reason(client, enrolled_user, sign_in):
    sign_in(client, enrolled_user)
    page = client.get(URL).content.decode()
    assert "VPN access: <strong>None</strong>" in page.replace("Your VPN access", "VPN access")
    assert "Request VPN access" in page
    response = client.post(URL, {"reason": ""})
    assert "This field is required" in response.content.decode()
    enrolled_user.refresh_from_db()
    assert enrolled_user.vpn_access == User.VpnAccess.NONE
    response = client.post(URL, {"reason": "on call from home"}, follow=True)
    enrolled_user.refresh_from_db()
    assert enrolled_user.vpn_access == User.VpnAccess.REQUESTED
    assert "waiting for the help desk" in response.content.decode()
    assert "<form" not in response.content.decode().split("<main")[-1]
    event = AuditEvent.objects.get(action="vpn_access.requested")
    assert event.details["reason"] == "on call from home"


def test_someone_without_a_device_is_told_they_need_one(client, make_user, sign_in):
    person = make_user("nodevice")
    sign_in(client, person)
    page = client.get(URL).content.decode()
    assert "you also need a device set up" in page


def test_my_devices_links_to_vpn_access(client, enrolled_user, sign_in):
    sign_in(client, enrolled_user)
    assert 'href="/vpn-access/"' in client.get("/devices/").content.decode()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_vpn_access_page_in_chromium_on_a_phone(live_server, enrolled_user, password):
    from testsupport import fresh_code

    axe = Accessibility()
    with chromium() as browser:
        context = browser.new_context(base_url=live_server.url, **PHONE)
        page = context.new_page()
        page.goto("/account/sign-in/")
        page.get_by_label("Institution ID").fill(enrolled_user.username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.get_by_label("Code", exact=True).fill(fresh_code(enrolled_user.registrations.get().app_device))
        page.get_by_role("button", name="Verify").click()
        page.wait_for_url("**/devices/")
        page.goto(URL)
        axe.check(page, "vpn access")
        assert not horizontal_overflow(page)
        page.get_by_role("button", name="Request VPN access").click()
        expect(page.get_by_text("This field is required")).to_be_visible()
        axe.check(page, "vpn access, reason missing")
        page.get_by_label("Why do you need the VPN?").fill("night shifts from home")
        page.get_by_role("button", name="Request VPN access").click()
        expect(page.get_by_text("waiting for the help desk")).to_be_visible()
        axe.check(page, "vpn access, requested")
    axe.assert_clean()
