"""The 400, 403, 404 and 500 pages in real Chromium: the site's layout, a main landmark, a way back, the help desk.

The 404 and the refused form (CSRF) come from the live site as a person meets them. The 400 (a Host header not
allowed) and the 500 come from the site through the test client, and are then served to Chromium at a live-site
address, so the page is checked with the site's real stylesheet.
"""

import pytest
from django.test import Client, RequestFactory
from django.urls import get_resolver
from playwright.sync_api import expect

from .browser import DESKTOP, PHONE, Accessibility, chromium, horizontal_overflow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HELP_DESK = "the IT help desk on 555-0100"


@pytest.fixture
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture(autouse=True)
def _help_desk(settings):
    settings.HELP_DESK_CONTACT = HELP_DESK


def _looks_like_the_site(page, *, heading, status):
    expect(page.get_by_role("main")).to_have_count(1)
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)
    back = page.get_by_role("link", name="Go to the start page")
    expect(back).to_have_attribute("href", "/")
    expect(page.get_by_role("main")).to_contain_text(f"contact {HELP_DESK} and tell them you saw error {status}")
    expect(page.get_by_role("banner")).to_contain_text("two-step verification")


def _serve(page, live_server, path, response):
    """Answer ``path`` on the live site's address with ``response`` (status, headers and body as the site made it)."""
    body = response.content

    def fulfill(route):
        route.fulfill(status=response.status_code, body=body, content_type=response["Content-Type"])

    page.route(f"{live_server.url}{path}", fulfill)
    return page.goto(path)


@pytest.mark.parametrize("screen", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_error_pages_in_chromium_are_in_the_site_layout_and_axe_clean(browser, live_server, screen):
    context = browser.new_context(base_url=live_server.url, **screen)
    context.set_default_timeout(15_000)
    page = context.new_page()
    axe = Accessibility()
    overflowing = {}

    def visit(name):
        axe.check(page, name)
        if (extra := horizontal_overflow(page)) > 0:
            overflowing[name] = extra

    response = page.goto("/no-such-page/")
    assert response.status == 404
    _looks_like_the_site(page, heading="Page not found", status=404)
    visit("404")
    page.get_by_role("link", name="Go to the start page").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")

    # A form sent without its CSRF cookie (it expired, or cookies were cleared): the site's page, not Django's.
    page.goto("/account/sign-in/")
    context.clear_cookies()
    page.get_by_label("Institution ID").fill("someone")
    page.get_by_label("Password").fill("not checked")
    # The form's own POST: the page's passkey script also posts (for its options) as it loads.
    with page.expect_response(lambda r: r.request.method == "POST" and "/account/sign-in/" in r.url) as posted:
        page.get_by_role("button", name="Sign in", exact=True).click()
    assert posted.value.status == 403
    _looks_like_the_site(page, heading="This form has expired", status=403)
    expect(page.get_by_role("main")).to_contain_text("Nothing was changed.")
    visit("403-form")

    bad_host = Client().get("/account/sign-in/", HTTP_HOST="evil.example")
    assert bad_host.status_code == 400
    _serve(page, live_server, "/error-400/", bad_host)
    _looks_like_the_site(page, heading="We could not read that request", status=400)
    visit("400")

    forbidden = get_resolver().resolve_error_handler(403)(RequestFactory().get("/"), exception=None)
    assert forbidden.status_code == 403
    _serve(page, live_server, "/error-403/", forbidden)
    _looks_like_the_site(page, heading="You cannot open this page", status=403)
    visit("403")

    broken = get_resolver().resolve_error_handler(500)(RequestFactory().get("/"))
    assert broken.status_code == 500
    _serve(page, live_server, "/error-500/", broken)
    _looks_like_the_site(page, heading="Something went wrong on our side", status=500)
    visit("500")

    assert axe.checked == ["404", "403-form", "400", "403", "500"]
    assert not overflowing, f"error pages scroll sideways: {overflowing}"
    axe.assert_clean()
    context.close()
