"""Campaigns in the staff admin: a permission of their own, every change through the audited services, bad input
refused with nothing written."""

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile

from campaigns.models import Campaign, Member
from identity.models import AuditEvent
from testsupport import details_of

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

ADD = "/admin/campaigns/campaign/add/"
LIST = "/admin/campaigns/campaign/"


@pytest.fixture
def organiser(make_user, enroll):
    person = make_user("organiser", is_staff=True)
    person.user_permissions.add(Permission.objects.get(codename="run_campaigns"))
    enroll(person)
    return person


@pytest.fixture
def organiser_client(client, organiser, sign_in):
    sign_in(client, organiser)
    return client


def form(**overrides):
    return {
        "name": "Physics 2027",
        "owner": "",
        "starts_at_0": "2026-01-05",
        "starts_at_1": "09:00:00",
        "deadline_0": "2027-03-01",
        "deadline_1": "17:00:00",
        "cohort": "list",
        "cohort_values": "p1, p2\np3",
        "policy_before_deadline": "allow_password_alone",
        "policy_after_deadline": "require_enrollment",
        "reminder_days": "14, 7, 3, 1",
        "time_zone": "Europe/Berlin",
        "quiet_from": "20:00",
        "quiet_until": "08:00",
        "email_subject": "Set up two-step sign-in",
        "email_text": "Please set it up before the deadline.",
        "sms_text": "",
        **overrides,
    }


def test_staff_with_the_permission_create_a_campaign_audited_and_its_cohort_refreshed(
    organiser_client, organiser, make_user, django_capture_on_commit_callbacks
):
    listed = make_user("p2")
    with django_capture_on_commit_callbacks(execute=True):
        response = organiser_client.post(ADD, form(owner=str(organiser.pk)))
    assert response.status_code == 302, response.content.decode()[:3000]
    campaign = Campaign.objects.get()
    assert (campaign.owner, campaign.reminder_days, campaign.time_zone) == (organiser, [14, 7, 3, 1], "Europe/Berlin")
    assert sorted(campaign.cohort_entries.values_list("value", flat=True)) == ["p1", "p2", "p3"]
    event = AuditEvent.objects.get(action="campaigns.created")
    assert (event.actor, details_of(event)["cohort_values"]) == (organiser, 3)
    # The cohort's rows were refreshed after the commit (the task runs eagerly here).
    assert list(Member.objects.values_list("person", flat=True)) == [listed.pk]


def test_an_uploaded_list_replaces_the_pasted_one(organiser_client):
    upload = SimpleUploadedFile("ids.csv", b"institution_id,name\r\nq1,Ann\r\nq2,Bob\r\n", content_type="text/csv")
    response = organiser_client.post(ADD, {**form(cohort_values="ignored"), "cohort_file": upload})
    assert response.status_code == 302
    values = sorted(Campaign.objects.get().cohort_entries.values_list("value", flat=True))
    assert values == ["institution_id", "q1", "q2"]


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"deadline_0": "2025-01-01"}, "The deadline must come after the start."),
        ({"reminder_days": "14, soon"}, "Whole numbers of days"),
        ({"time_zone": "Mars/Olympus"}, "Name a time zone"),
        ({"cohort": "departments", "cohort_values": ""}, "Name who is in the cohort"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message_and_nothing_written(organiser_client, overrides, words):
    response = organiser_client.post(ADD, form(**overrides))
    assert response.status_code == 200
    assert words in response.content.decode()
    assert not Campaign.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="campaigns.").exists()


def test_a_change_is_audited_and_closing_stops_it(organiser_client, organiser):
    organiser_client.post(ADD, form())
    campaign = Campaign.objects.get()
    change = f"{LIST}{campaign.pk}/change/"
    response = organiser_client.post(change, form(policy_before_deadline="require_enrollment", cohort_values="p1"))
    assert response.status_code == 302, response.content.decode()[:3000]
    details = details_of(AuditEvent.objects.get(action="campaigns.changed"))
    assert details["policy_before_deadline"] == ["allow_password_alone", "require_enrollment"]
    assert (details["cohort_added"], details["cohort_removed"]) == (0, 2)
    organiser_client.post(LIST, {"action": "close_campaigns", "_selected_action": [campaign.pk]})
    campaign.refresh_from_db()
    assert campaign.closed_at is not None
    assert AuditEvent.objects.get(action="campaigns.closed").actor == organiser
    # A closed campaign is read-only.
    organiser_client.post(change, form(name="Renamed"))
    campaign.refresh_from_db()
    assert campaign.name == "Physics 2027"


def test_staff_without_the_permission_cannot_see_or_create_campaigns(client, make_user, enroll, sign_in):
    desk = make_user("deskonly", is_staff=True)
    enroll(desk)
    sign_in(client, desk)
    assert client.get(LIST).status_code == 403
    assert client.post(ADD, form()).status_code == 403
    assert not Campaign.objects.exists()


def test_viewers_see_campaigns_but_change_nothing(client, make_user, enroll, sign_in, make_campaign):
    campaign = make_campaign()
    viewer = make_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_campaign"))
    enroll(viewer)
    sign_in(client, viewer)
    assert campaign.name in client.get(LIST).content.decode()
    assert client.post(f"{LIST}{campaign.pk}/change/", form(name="Renamed")).status_code == 403
    assert client.get(ADD).status_code == 403
