"""One rule for "enrolled", written once as the view ``devices.models.WorkingRegistration`` (migration devices 0012):
the reminders, the VPN's campaign policy, the progress page (the ORM, through ``devices.selectors.enrolled``), the
campaign's people still to enroll and the enrollment report (SQL joining the view) must never disagree about anyone,
and the rule must put each state where it belongs.

One person in each state a device can be in, each in a department of their own so the progress page's rows name
them one by one, all with VPN access, in one campaign (a list of their IDs) that lets the password alone in before
its deadline.
"""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_otp import device_classes, user_has_device

from campaigns import services as campaign_services
from campaigns import texts
from campaigns.models import Campaign, CohortEntry
from campaigns.progress import campaign_progress
from campaigns.selectors import members_due
from campaigns.tests.support import running_campaign
from devices import bypass_codes, services
from devices.models import BypassCodeDevice, Registration
from devices.selectors import has_enrolled
from reports.selectors.campaigns import CampaignPeopleFilters, campaign_people_rows
from reports.selectors.enrollment import EnrollmentFilters, enrollment_rows
from reports.tests.conftest import ORIGIN, RP_ID, add_landline, add_security_key, recording_gateway  # noqa: F401
from testsupport import PASSWORD
from vpn import services as vpn_services
from vpn.services import radius
from vpn.services.radius import radius_authenticate

pytestmark = pytest.mark.django_db

ENROLLED = {"app", "phone_only", "key_only", "passkey"}
NOT_ENROLLED = {"no_device", "pending", "backup_codes_only", "bypass_only", "bypass_expired", "retired"}
# Not enrolled, but holding codes the VPN can check: asked for one, never let in with the password alone.
HOLDS_CODES = {"backup_codes_only", "bypass_only"}
# Not enrolled since their last device was reported lost (BND-02): refused in the help desk's words.
HELD = {"retired"}


@pytest.fixture(autouse=True)
def relying_party(settings):
    settings.WEBAUTHN_RP_ID = RP_ID
    settings.WEBAUTHN_ORIGINS = [ORIGIN]


def _now():
    return timezone.now()


@pytest.fixture
def everyone(make_user, enroll, approve, recording_gateway, django_capture_on_commit_callbacks):  # noqa: F811
    desk = make_user("desk1", is_staff=True)
    people = {}
    for state in sorted(ENROLLED | NOT_ENROLLED):
        people[state] = make_user(state.replace("_", ""), department=state)
        approve(people[state])
    pending = services.start_enrollment(people["pending"], kind="tablet", verified_at=_now())
    pending = services.set_platform(pending, platform="android", actor=people["pending"])
    services.issue_app_secret(pending, actor=people["pending"], verified_at=_now())  # its code never entered
    enroll(people["app"])
    add_landline(people["phone_only"], "+16175550188", django_capture_on_commit_callbacks)
    add_security_key(people["key_only"])
    add_security_key(people["passkey"], Registration.Kind.PASSKEY)
    # A phone reported lost; the backup codes made while it worked are all that is left.
    lost = enroll(people["backup_codes_only"])
    services.generate_backup_codes(people["backup_codes_only"], actor=people["backup_codes_only"], verified_at=_now())
    services.report_lost(lost, actor=people["backup_codes_only"], verified_at=_now())
    # The help desk's codes, for an hour; and a set whose hour is over.
    for state in ("bypass_only", "bypass_expired"):
        bypass_codes.issue_bypass_codes(people[state], actor=desk, count=3, valid_minutes=60)
    BypassCodeDevice.objects.filter(user=people["bypass_expired"]).update(valid_until=_now() - timedelta(minutes=1))
    # The only phone reported lost: its registration is retired.
    services.report_lost(enroll(people["retired"]), actor=people["retired"], verified_at=_now())
    for person in people.values():
        person.refresh_from_db()
    return people


@pytest.fixture
def campaign(everyone):
    campaign = running_campaign(
        cohort=Campaign.Cohort.LIST,
        policy_before_deadline=Campaign.Policy.ALLOW_PASSWORD_ALONE,
        starts_in=timedelta(days=-3),
    )
    CohortEntry.objects.bulk_create([CohortEntry(campaign=campaign, value=p.username) for p in everyone.values()])
    campaign_services.refresh_members(campaign, now=campaign.starts_at)
    return campaign


def _names(states) -> set[str]:
    return {state.replace("_", "") for state in states}


def test_the_reminders_the_vpn_the_progress_page_and_the_reports_agree_on_who_is_enrolled(
    everyone, campaign, integration, radius_client
):
    by_username = {person.username: state for state, person in everyone.items()}

    # The rule itself, person by person.
    assert {state for state, person in everyone.items() if has_enrolled(person)} == ENROLLED

    # The reminders: every step goes to those not enrolled, and only to them.
    due = {by_username[m.person.username] for m in members_due(campaign, timezone.now()).select_related("person")}
    assert due == NOT_ENROLLED

    # The progress page: one department each, so each row is one person.
    progress = campaign_progress(campaign)
    rows = {department: done for department, _, done, _, _ in progress.departments if department in everyone}
    assert {state for state, done in rows.items() if done} == ENROLLED
    assert {state for state, done in rows.items() if not done} == NOT_ENROLLED
    assert dict(progress.strengths)["None (not enrolled)"] == len(NOT_ENROLLED)

    # The campaign's people still to enroll (the report exports), and the enrollment report's column.
    still_to_enroll = {row[1] for row in campaign_people_rows(CampaignPeopleFilters(campaign=campaign.pk))}
    assert still_to_enroll == _names(NOT_ENROLLED)
    report = {row[0]: row[4] for row in enrollment_rows(EnrollmentFilters()) if row[0] in by_username}
    assert {by_username[name] for name, enrolled in report.items() if enrolled} == ENROLLED

    # The VPN: the password alone lets in exactly those not enrolled who have no code to give and whose last device
    # was not reported lost; those holding backup or bypass codes are asked for one; those whose last device was
    # reported lost are sent to the help desk; the enrolled are never let in without a second factor.
    let_in = set()
    for state, person in everyone.items():
        answer = vpn_services.preauth(integration, {"username": person.username}, client_ip="10.0.0.1")
        radius = radius_authenticate(radius_client, username=person.username, password=PASSWORD, state=None, ip=None)
        assert (answer["result"] == "allow") == (radius.outcome == "accept"), (state, answer, radius)
        if answer["result"] == "allow":
            let_in.add(state)
        elif state in ENROLLED | HOLDS_CODES:
            assert answer["result"] == ("enroll" if state in {"key_only", "passkey"} else "auth"), (state, answer)
        elif state in HELD:
            assert (answer["result"], radius.outcome) == ("deny", "reject"), (state, answer, radius)
            assert answer["status_msg"] == radius.message == texts.held_at_the_vpn()
    assert let_in == NOT_ENROLLED - HOLDS_CODES - HELD


def test_radius_asks_for_a_code_exactly_when_django_otp_says_the_person_has_a_device(everyone, radius_client):
    """RADIUS decides in SQL, in the statement that stores the challenge, whether a person has any confirmed device
    (backup and bypass codes too, a bypass set only while it lasts). That statement and django-otp's
    ``user_has_device`` (each model's ``devices_for_user``) agree for a person in every state of every kind."""
    kinds = {
        model
        for model in device_classes()
        for person in everyone.values()
        if model.objects.devices_for_user(person, confirmed=True).exists()
    }
    assert kinds == set(device_classes())
    for state, person in everyone.items():
        stored = radius._store_challenge(
            bytes(32) + state.encode(), user=person, client=radius_client, only_with_a_device=True
        )
        assert stored == user_has_device(person, confirmed=True), state
    assert not user_has_device(everyone["bypass_expired"], confirmed=True)
