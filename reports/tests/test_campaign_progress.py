"""A campaign's progress page (staff who run campaigns and auditors), its people still to enroll through the report
exports, the resilience nudges it can send, and the weekly summary to its owner."""

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import openpyxl
import pytest
from django.contrib.auth.models import Permission
from django.core import mail
from django.utils import timezone

from campaigns import services as campaign_services
from campaigns.models import Campaign, CohortEntry, Nudge
from campaigns.nudges import queue_nudge_batch
from campaigns.progress import campaign_progress
from campaigns.summaries import queue_weekly_summaries
from campaigns.tests.support import running_campaign
from devices.models import OutboundMessage
from identity.models import AuditEvent, User
from reports.selectors.campaigns import CampaignPeopleFilters, campaign_people_count, campaign_people_rows
from testsupport import details_of

from .conftest import FORMULA_DEPARTMENT
from .test_enrollment_pages import parse_csv

pytestmark = pytest.mark.django_db


@pytest.fixture
def campaign(population):
    """Cardiology and Radiology (six people of the population; Frank's department is not in it), started ten days ago."""
    campaign = running_campaign(
        cohort=Campaign.Cohort.DEPARTMENTS, starts_in=timedelta(days=-10), deadline_in=timedelta(days=20)
    )
    CohortEntry.objects.bulk_create([CohortEntry(campaign=campaign, value=v) for v in ("Cardiology", "Radiology")])
    campaign_services.refresh_members(campaign, now=campaign.starts_at)
    return campaign


@pytest.fixture
def rollout_lead(make_user, enroll, sign_in, client):
    person = make_user("lead1", is_staff=True)
    person.user_permissions.add(Permission.objects.get(codename="run_campaigns"))
    enroll(person)
    sign_in(client, person)
    return client


def page_of(client, campaign) -> str:
    response = client.get(f"/admin/reports/campaigns/{campaign.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def test_progress_counts_the_cohort_by_department_strength_and_risk(auditor_client, campaign, population):
    progress = campaign_progress(campaign)
    assert (progress.people, progress.enrolled, progress.not_enrolled) == (6, 5, 1)  # Dave reported his phone lost
    assert progress.departments == [("Cardiology", 3, 3, 0, 100), ("Radiology", 3, 2, 1, 67)]
    assert dict(progress.strengths) == {
        "Security key": 1,  # Bob
        "Authenticator app": 3,  # Alice, Erin, Grace
        "Text or voice call": 1,  # Carol's landline
        "None (not enrolled)": 1,
    }
    # Carol has only voice codes; everyone but Bob has a single device; only Alice has backup codes.
    assert progress.at_risk == {"text_only": 1, "single_device": 4, "no_backup_codes": 4, "any": 5, "nudged": 0}
    # All six were in on the first day; five enrolled today.
    assert progress.burn_down[0] == (timezone.localdate(campaign.starts_at).isoformat(), 6)
    assert progress.burn_down[-1] == (timezone.localdate().isoformat(), 1)
    assert progress.pace_per_day == pytest.approx(5 / 7)
    assert progress.projected_finish == timezone.localdate() + timedelta(days=2)
    assert progress.finishes_in_time is True

    page = page_of(auditor_client, campaign)
    assert re.search(r'id="campaign-people">6<', page)
    assert re.search(r'id="campaign-not-enrolled">1<', page)
    assert re.search(r'id="risk-text-only">1<', page)
    assert re.search(r'id="risk-any">5<', page)
    assert (timezone.localdate() + timedelta(days=2)).isoformat() in page
    for caption in ("People still to enroll, by day", "Percent of the cohort enrolled, by department"):
        assert page.count(caption) >= 3  # the SVG's title, the figure's caption, the table's caption
    assert "<script" not in page.split('id="content-main"')[1]
    assert "Nudge the people at risk" not in page  # auditors read; they do not run campaigns


def test_the_people_still_to_enroll_export_through_the_reports_masked_and_audited(auditor_client, campaign, population):
    response = auditor_client.post("/admin/reports/campaign-people/export.csv", {"campaign": campaign.pk})
    assert response.status_code == 200
    header, *rows = parse_csv(response)
    assert header[:2] == ["Campaign", "Institution ID"]
    assert [row[1] for row in rows] == ["dave"]
    event = AuditEvent.objects.get(action="report.exported")
    assert details_of(event) == {
        "report": "campaign-people",
        "format": "csv",
        "filters": {"campaign": campaign.pk},
        "rows": 1,
    }
    response = auditor_client.post("/admin/reports/campaign-people/export.xlsx", {"campaign": campaign.pk})
    sheet = openpyxl.load_workbook(__import__("io").BytesIO(b"".join(response.streaming_content))).active
    assert [cell.value for cell in sheet[2]][1] == "dave"


def test_the_export_neutralizes_formulas(auditor_client, population):
    # Frank's department would run as a formula in a spreadsheet.
    campaign = running_campaign(cohort=Campaign.Cohort.DEPARTMENTS)
    CohortEntry.objects.create(campaign=campaign, value=FORMULA_DEPARTMENT)
    campaign_services.refresh_members(campaign)
    _, row = parse_csv(auditor_client.post("/admin/reports/campaign-people/export.csv", {"campaign": campaign.pk}))
    assert row[3] == "'" + FORMULA_DEPARTMENT


def test_staff_who_run_campaigns_see_it_and_nudge_the_people_at_risk_once(
    rollout_lead, campaign, population, django_capture_on_commit_callbacks
):
    page = page_of(rollout_lead, campaign)
    assert "Nudge the people at risk" in page
    assert "Download CSV" not in page  # the exports stay the auditors'
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            response = rollout_lead.post(f"/admin/reports/campaigns/{campaign.pk}/nudge")
        assert response.status_code == 302
    nudged = set(Nudge.objects.filter(campaign=campaign).values_list("person__username", flat=True))
    assert nudged == {"alice", "bob", "carol", "erin", "grace"}
    assert sorted(m.to[0] for m in mail.outbox) == sorted(f"{name}@example.edu" for name in nudged)
    carol = next(m for m in mail.outbox if m.to[0] == "carol@example.edu").body
    assert "add the authenticator app" in carol and "print backup codes" in carol
    alice = next(m for m in mail.outbox if m.to[0] == "alice@example.edu").body
    assert "add a second device" in alice and "backup codes" not in alice
    assert AuditEvent.objects.filter(action="campaign.nudges_started").count() == 2
    assert re.search(r'id="risk-nudged">5<', page_of(rollout_lead, campaign))


def test_others_are_refused(client, staff_member, sign_in, auditor, campaign):
    sign_in(client, staff_member)  # the help desk
    assert client.get(f"/admin/reports/campaigns/{campaign.pk}/").status_code == 403
    client.logout()
    sign_in(client, auditor)
    assert client.post(f"/admin/reports/campaigns/{campaign.pk}/nudge").status_code == 403
    assert client.get("/admin/reports/campaigns/999999/").status_code == 404
    assert not Nudge.objects.exists()


def test_the_owner_gets_a_weekly_summary(campaign, make_user, population, django_capture_on_commit_callbacks):
    owner = make_user("owner1", first_name="Olga")
    Campaign.objects.filter(pk=campaign.pk).update(owner=owner)
    with django_capture_on_commit_callbacks(execute=True):
        assert queue_weekly_summaries() == 1
    message = OutboundMessage.objects.get(template="campaigns:weekly_summary")
    assert message.recipient == owner.email
    body = mail.outbox[-1].body
    assert "Enrolled: 5 (83.3%)" in body and "Still to enroll: 1" in body
    assert "- Radiology: 2 of 3 (67%)" in body
    assert f"/admin/reports/campaigns/{campaign.pk}/" in body
    assert AuditEvent.objects.filter(action="campaign.weekly_summary_sent", subject=owner).count() == 1


def test_the_weekly_summary_says_the_deadline_as_the_campaigns_people_are_told_it(
    campaign, make_user, population, settings, django_capture_on_commit_callbacks
):
    """In the campaign's time zone, named (as its emails say it), whatever zone the server or the page is in."""
    settings.TIME_ZONE = "Asia/Tokyo"
    Campaign.objects.filter(pk=campaign.pk).update(owner=make_user("owner3"))
    with django_capture_on_commit_callbacks(execute=True):
        assert queue_weekly_summaries() == 1
    local = campaign.deadline.astimezone(ZoneInfo("America/New_York"))
    assert f"(deadline {local:%A %-d %B %Y, %H:%M} (America/New_York))" in mail.outbox[-1].body


def test_the_weekly_summary_goes_once_a_week_however_often_beat_runs(
    campaign, make_user, population, django_capture_on_commit_callbacks
):
    Campaign.objects.filter(pk=campaign.pk).update(owner=make_user("owner2"))
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        assert queue_weekly_summaries(now=now) == 1
        assert queue_weekly_summaries(now=now) == 0  # beat twice, or a retry
    assert OutboundMessage.objects.filter(template="campaigns:weekly_summary").count() == 1
    assert AuditEvent.objects.filter(action="campaign.weekly_summary_sent").count() == 1
    assert len(mail.outbox) == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert queue_weekly_summaries(now=now + timedelta(days=7)) == 1  # the next week's
    assert OutboundMessage.objects.filter(template="campaigns:weekly_summary").count() == 2


def test_only_people_emailed_are_counted_as_nudged_and_the_rest_wait_for_an_address(
    campaign, make_user, enroll, population, django_capture_on_commit_callbacks
):
    nobody_to_mail = make_user("hal", email=None, department="Cardiology")
    enroll(nobody_to_mail)  # one device, no backup codes: at risk
    campaign_services.refresh_members(campaign)
    with django_capture_on_commit_callbacks(execute=True):
        assert queue_nudge_batch(campaign.pk).queued == 5
    progress = campaign_progress(campaign)
    assert (progress.at_risk["any"], progress.at_risk["nudged"]) == (6, 5)
    assert not Nudge.objects.filter(person=nobody_to_mail).exists()

    User.objects.filter(pk=nobody_to_mail.pk).update(email="hal@example.edu")
    with django_capture_on_commit_callbacks(execute=True):
        assert queue_nudge_batch(campaign.pk).queued == 1
    assert Nudge.objects.filter(person=nobody_to_mail).exists()
    assert mail.outbox[-1].to == ["hal@example.edu"]
    assert len(mail.outbox) == 6


def test_a_closed_campaign_still_lists_its_people_still_to_enroll(auditor_client, campaign, staff_member, population):
    campaign_services.close_campaign(campaign, actor=staff_member)
    assert [row[1] for row in campaign_people_rows(CampaignPeopleFilters(campaign=campaign.pk))] == ["dave"]
    assert campaign_people_count(CampaignPeopleFilters(campaign=campaign.pk)) == 1
    assert list(campaign_people_rows(CampaignPeopleFilters())) == []  # every open campaign: none is
    response = auditor_client.post("/admin/reports/campaign-people/export.csv", {"campaign": campaign.pk})
    _, *rows = parse_csv(response)
    assert [row[1] for row in rows] == ["dave"]


def test_someone_in_two_open_campaigns_is_one_person_still_to_enroll(auditor_client, campaign, population):
    radiology = running_campaign(cohort=Campaign.Cohort.DEPARTMENTS, deadline_in=timedelta(days=20))
    CohortEntry.objects.create(campaign=radiology, value="Radiology")
    campaign_services.refresh_members(radiology, now=radiology.starts_at)
    assert [row[1] for row in campaign_people_rows(CampaignPeopleFilters())] == ["dave", "dave"]

    page = auditor_client.get("/admin/reports/campaign-people/").content.decode()
    assert 'id="total-people">1 people still to enroll.' in page
    assert "People by campaign 1 to 2 of 2</h2>" in page  # every row still reachable
