"""The campaign admin in real Chromium: a staff member holding the campaigns' own permission creates a campaign (a
cohort, a deadline, a schedule, the texts), changes it, and finds both changes in the audit log; axe-core on every
admin page visited."""

import pytest
from django.contrib.auth.models import Permission
from playwright.sync_api import expect

from campaigns.models import Campaign
from devices.tests.browser import DESKTOP, Accessibility, sign_in_with_app
from identity.models import AuditEvent

# Transactional, as the other browser tests: the live server's thread must see the data.
pytestmark = [pytest.mark.browser, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_a_campaign_created_and_changed_in_the_admin_in_chromium_with_axe(browser, site, make_user, enroll, password):
    organiser = make_user("rollout7", is_staff=True)
    organiser.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["run_campaigns", "view_auditevent"], content_type__app_label__in=["campaigns", "identity"]
        )
    )
    device = enroll(organiser).app_device
    make_user("phys1")
    axe = Accessibility()

    page = browser.new_context(base_url=site, **DESKTOP).new_page()
    page.set_default_timeout(15_000)
    page.goto("/admin/campaigns/campaign/add/")
    sign_in_with_app(page, organiser, password, device)

    expect(page.get_by_role("heading", name="Add campaign")).to_be_visible()
    axe.check(page, "add campaign")
    page.locator("#id_name").fill("Physics 2027")
    page.locator("#id_starts_at_0").fill("2026-01-05")
    page.locator("#id_starts_at_1").fill("09:00:00")
    page.locator("#id_deadline_0").fill("2027-03-01")
    page.locator("#id_deadline_1").fill("17:00:00")
    page.locator("#id_cohort").select_option("list")
    page.locator("#id_cohort_values").fill("phys1, phys2\nphys3")
    page.locator("#id_policy_before_deadline").select_option("allow_password_alone")
    page.locator("#id_policy_after_deadline").select_option("require_enrollment")
    page.locator("#id_reminder_days").fill("14, 7, 1")
    page.locator("#id_time_zone").fill("Europe/Berlin")
    page.locator("#id_quiet_from").fill("20:00")
    page.locator("#id_quiet_until").fill("08:00")
    page.locator("#id_email_subject").fill("Set up two-step sign-in")
    page.locator("#id_email_text").fill("Please set up two-step sign-in by {deadline}: {address}")
    page.get_by_role("button", name="Save", exact=True).click()

    expect(page.locator(".messagelist")).to_contain_text("Physics 2027")
    axe.check(page, "campaign list after adding")
    campaign = Campaign.objects.get(name="Physics 2027")
    assert (campaign.reminder_days, campaign.time_zone, campaign.policy_before_deadline) == (
        [14, 7, 1],
        "Europe/Berlin",
        "allow_password_alone",
    )
    assert sorted(campaign.cohort_entries.values_list("value", flat=True)) == ["phys1", "phys2", "phys3"]

    page.locator("#result_list").get_by_role("link", name="Physics 2027").click()
    expect(page.locator("#id_cohort_values")).to_have_value("phys1\nphys2\nphys3")
    axe.check(page, "change campaign")
    page.locator("#id_deadline_0").fill("2027-04-01")
    page.locator("#id_policy_before_deadline").select_option("require_enrollment")
    page.locator("#id_cohort_values").fill("phys1\nphys3")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("Physics 2027")
    campaign.refresh_from_db()
    assert (campaign.deadline.date().isoformat(), campaign.policy_before_deadline) == (
        "2027-04-01",
        "require_enrollment",
    )
    assert sorted(campaign.cohort_entries.values_list("value", flat=True)) == ["phys1", "phys3"]

    # Both changes are in the audit log, in words, as the organiser sees it.
    page.goto("/admin/identity/auditevent/?q=campaigns.")
    axe.check(page, "audit log")
    expect(page.get_by_text("Enrollment campaign created: “Physics 2027”")).to_be_visible()
    expect(page.get_by_text(f"Enrollment campaign changed (campaign {campaign.pk})")).to_be_visible()
    actions = AuditEvent.objects.filter(action__startswith="campaigns.", actor=organiser).values_list(
        "action", flat=True
    )
    assert sorted(actions) == ["campaigns.changed", "campaigns.created"]
    axe.assert_clean()
