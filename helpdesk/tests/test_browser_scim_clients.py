"""A SCIM client's token in real Chromium, as the superuser who connects a cloud directory (DIR-05).

They add the client in the admin and see the tenant URL and the token once; the token works against the SCIM
endpoint (a real request to the live server). Reloading that page posts the form again and shows no token (the
name is taken); the token appears on no other page. Another superuser rotates it on their phone, from the client's
page: the old token stops, the new one works, and a reload of the new token's page replaces nothing (the token just
pasted into the directory keeps working); nor does the first superuser's question, left open since before.
axe-core checks every page on the way.
"""

import re

import httpx2
import pytest
from playwright.sync_api import expect

from devices.tests.browser import PHONE, WITH_MODERATE, Accessibility, horizontal_overflow
from identity.directory.models import ScimClient
from identity.directory.scim_clients import ROTATED_SINCE
from identity.models import AuditEvent

from .test_browser_desk import _agent_in_admin

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TOKEN = re.compile(r"scim_[A-Za-z0-9_-]{43}")


def _shown_token(page, tenant_url: str) -> str:
    expect(page.get_by_role("heading", level=1)).to_have_text("SCIM client: Entra ID")
    expect(
        page.get_by_text("Copy the secret token now: it is shown only on this page and never again.")
    ).to_be_visible()
    expect(page.locator("dd code").first).to_have_text(tenant_url)
    token = page.locator("dd code").nth(1).inner_text()
    assert TOKEN.fullmatch(token), token
    return token


def _status_with(tenant_url: str, token: str | None) -> int:
    """One real SCIM request to the live server, as Entra ID's "Test Connection" makes it."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx2.get(f"{tenant_url}/Users", params={"count": 1}, headers=headers, timeout=15)
    if response.status_code == 200:
        assert response.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
    return response.status_code


def test_dir_05_a_superuser_adds_a_scim_client_sees_its_token_once_uses_it_and_rotates_it_on_a_phone(
    browser, site, superuser, second_superuser, password, settings
):
    settings.SITE_URL = site  # the tenant URL the page shows is the live server's
    tenant_url = f"{site}/scim/v2"
    axe = Accessibility(WITH_MODERATE)
    page = _agent_in_admin(browser, site, superuser, password)

    page.get_by_role("link", name="SCIM clients").click()
    page.get_by_role("link", name="Add SCIM client").click()
    axe.check(page, "add a SCIM client")
    page.get_by_label("Name").fill("Entra ID")
    page.get_by_role("button", name="Save", exact=True).click()
    token = _shown_token(page, tenant_url)
    axe.check(page, "the token, shown once")
    assert _status_with(tenant_url, token) == 200
    assert _status_with(tenant_url, None) == 401
    client = ScimClient.objects.get()
    assert client.last_used_at is not None

    # A reload posts the form again: the name is taken, no second client, and no token on the page.
    page.reload()
    expect(page.get_by_text("SCIM client with this Name already exists.")).to_be_visible()
    assert token not in page.content() and ScimClient.objects.count() == 1
    # Nowhere else either: the list, the client's page, the audit log.
    page.get_by_role("link", name="SCIM clients").first.click()
    axe.check(page, "SCIM clients")
    assert token not in page.content()
    page.get_by_role("link", name="Entra ID").click()
    expect(page.get_by_role("link", name="Rotate the secret token")).to_be_visible()
    axe.check(page, "a SCIM client")
    assert token not in page.content()
    page.goto("/admin/identity/auditevent/")
    expect(page.get_by_text("SCIM client added: Entra ID")).to_be_visible()
    assert token not in page.content()

    # The list's action asks first too: it leads to the same question, and nothing is rotated yet.
    page.goto("/admin/directory/scimclient/")
    page.get_by_role("checkbox", name="Select this object for an action - Entra ID").check()
    page.locator("select[name=action]").select_option(
        label="Rotate the token of the selected client (the old one stops working at once)"
    )
    page.get_by_role("button", name="Go", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Rotate the secret token: Entra ID")
    axe.check(page, "rotate the token?")
    assert _status_with(tenant_url, token) == 200

    # Another superuser, on their phone, from the client's page.
    phone = _agent_in_admin(browser, site, second_superuser, password, screen=PHONE)
    phone.goto(f"/admin/directory/scimclient/{client.pk}/change/")
    phone.get_by_role("link", name="Rotate the secret token").click()
    expect(phone.get_by_text("stops working at once")).to_be_visible()
    axe.check(phone, "rotate the token? on a phone")
    phone.get_by_role("button", name="Rotate the secret token of Entra ID").click()
    rotated = _shown_token(phone, tenant_url)
    axe.check(phone, "the new token, on a phone")
    assert horizontal_overflow(phone) <= 0, "the token page scrolls sideways on a 390 px wide phone"
    assert rotated != token
    assert _status_with(tenant_url, token) == 401
    assert _status_with(tenant_url, rotated) == 200

    # Reloaded, the page posts the rotation again: refused, the token just shown (and pasted) keeps working.
    phone.reload()
    expect(phone.get_by_text(ROTATED_SINCE)).to_be_visible()
    assert rotated not in phone.content()
    assert _status_with(tenant_url, rotated) == 200
    # The question left open on the desktop was for the first token: refused too.
    page.get_by_role("button", name="Rotate the secret token of Entra ID").click()
    expect(page.get_by_text(ROTATED_SINCE)).to_be_visible()
    axe.check(page, "rotation refused")
    assert _status_with(tenant_url, rotated) == 200

    events = AuditEvent.objects.filter(details__scim_client=client.pk).order_by("sequence")
    assert [(event.action, event.actor) for event in events] == [
        ("directory.scim_client_created", superuser),
        ("directory.scim_token_rotated", second_superuser),
    ]
    assert not [
        event for event in AuditEvent.objects.all() if token in str(event.details) or rotated in str(event.details)
    ]
    axe.assert_clean()
