"""The web for a person not yet enrolled: before their campaign's deadline they may look around, every page saying
by when; after it the password leads straight to the wizard. Through the views, then walked in Chromium with axe."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from campaigns import services, texts
from devices.tests.browser import PHONE, Accessibility, chromium, horizontal_overflow
from testsupport import post_password

pytestmark = [pytest.mark.postgres]

WIZARD = reverse("devices:start")
MY_DEVICES = reverse("devices:my_devices")


def past_deadline(make_campaign, **fields):
    now = timezone.now()
    return make_campaign(starts_at=now - timedelta(days=20), days=None, deadline=now - timedelta(days=1), **fields)


@pytest.mark.django_db
def test_before_the_deadline_the_password_leads_where_the_person_was_going_and_the_pages_say_by_when(
    client, make_user, make_campaign
):
    person = make_user("newcomer")
    make_campaign(days=10)
    response = post_password(client, person)
    assert response.headers["Location"] == MY_DEVICES
    notice = texts.set_up_by(services.effective_policy(person))
    page = client.get(MY_DEVICES).content.decode()
    assert f"{notice}." in page
    assert f'href="{WIZARD}"' in page
    assert f"{notice}." in client.get(WIZARD, follow=True).content.decode()


@pytest.mark.django_db
def test_after_the_deadline_the_password_leads_straight_to_the_wizard(client, make_user, make_campaign):
    person = make_user("latecomer")
    past_deadline(make_campaign)
    response = post_password(client, person)
    assert response.headers["Location"] == WIZARD
    assert "Set up two-step sign-in by" not in client.get(WIZARD, follow=True).content.decode()


@pytest.mark.django_db
def test_outside_every_campaign_the_password_leads_to_the_wizard_as_before(client, make_user):
    response = post_password(client, make_user("outsider"))
    assert response.headers["Location"] == WIZARD


@pytest.mark.django_db
def test_an_enrolled_person_is_asked_for_a_code_and_never_shown_the_notice(
    client, enrolled_user, sign_in, make_campaign
):
    make_campaign(days=10)
    response = post_password(client, enrolled_user)
    assert response.headers["Location"] == reverse("identity:second_factor")
    client.logout()
    sign_in(client, enrolled_user)
    assert "Set up two-step sign-in by" not in client.get(MY_DEVICES).content.decode()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_campaign_walked_in_chromium_on_a_phone(live_server, make_user, make_campaign, password):
    before = make_user("newcomer", department="Physics")
    make_user("latecomer", department="History")
    make_campaign(days=10, cohort="departments", values=["Physics"])
    past_deadline(make_campaign, cohort="departments", values=["History"])
    notice = texts.set_up_by(services.effective_policy(before))
    axe = Accessibility()
    with chromium() as browser:
        context = browser.new_context(base_url=live_server.url, **PHONE)
        page = context.new_page()
        page.goto("/account/sign-in/")
        page.get_by_label("Institution ID").fill("newcomer")
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_url(f"**{MY_DEVICES}")
        expect(page.get_by_text(f"{notice}.")).to_be_visible()
        axe.check(page, "my devices, before the deadline")
        assert not horizontal_overflow(page)
        page.get_by_role("link", name="Set it up now").click()
        page.wait_for_url(f"**{WIZARD}**")
        expect(page.get_by_text(f"{notice}.")).to_be_visible()
        axe.check(page, "the wizard, before the deadline")
        assert not horizontal_overflow(page)
        page.get_by_role("button", name="Sign out").click()

        page.goto("/account/sign-in/")
        page.get_by_label("Institution ID").fill("latecomer")
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_url(f"**{WIZARD}**")
        expect(page.get_by_text("Set up two-step sign-in by")).to_have_count(0)
        axe.check(page, "the wizard, after the deadline")
    axe.assert_clean()
