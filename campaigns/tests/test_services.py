"""The policy a person not yet enrolled gets, and a campaign's life: created, changed, closed, its cohort as rows."""

import queue
import threading
import zoneinfo
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.utils import timezone

from campaigns import services, texts
from campaigns.models import Campaign, Member
from campaigns.tests.support import quiet_hours_far_from_now
from devices.models import OutboundMessage
from identity.models import AuditEvent
from testsupport import details_of, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

ALLOW = Campaign.Policy.ALLOW_PASSWORD_ALONE
REQUIRE = Campaign.Policy.REQUIRE_ENROLLMENT


def test_no_campaign_no_policy(make_user):
    assert services.effective_policy(make_user()) is None


def test_before_the_deadline_the_password_alone_is_allowed_and_after_it_enrollment_is_required(
    make_user, make_campaign
):
    person = make_user()
    campaign = make_campaign(days=7)
    policy = services.effective_policy(person)
    assert (policy.campaign_id, policy.password_alone, policy.past_deadline) == (campaign.pk, True, False)
    assert policy.deadline == campaign.deadline
    later = services.effective_policy(person, now=campaign.deadline + timedelta(seconds=1))
    assert (later.password_alone, later.past_deadline) == (False, True)


def test_a_campaign_not_started_or_closed_applies_to_no_one(make_user, make_campaign, campaign_staff):
    person = make_user()
    upcoming = make_campaign(starts_at=timezone.now() + timedelta(days=1), days=8)
    assert services.effective_policy(person) is None
    assert services.effective_policy(person, now=upcoming.starts_at) is not None
    services.close_campaign(upcoming, actor=campaign_staff)
    assert services.effective_policy(person, now=upcoming.starts_at) is None


def test_the_strictest_policy_wins_and_its_deadline_applies(make_user, make_campaign):
    person = make_user(department="Chemistry")
    late = make_campaign(days=30, cohort="departments", values=["Chemistry"])
    early = make_campaign(days=5)
    policy = services.effective_policy(person)
    assert (policy.campaign_id, policy.deadline, policy.password_alone) == (early.pk, early.deadline, True)
    # Past the early one's deadline it requires enrollment, though the later one would still allow the password.
    policy = services.effective_policy(person, now=early.deadline + timedelta(hours=1))
    assert (policy.campaign_id, policy.password_alone) == (early.pk, False)
    # A campaign that requires enrollment from its start beats one that allows the password alone.
    strict = make_campaign(days=60, policy_before_deadline=REQUIRE, cohort="list", values=[person.username])
    policy = services.effective_policy(person)
    assert (policy.campaign_id, policy.deadline, policy.password_alone) == (strict.pk, strict.deadline, False)
    assert late.pk not in {policy.campaign_id}


def test_the_deadline_people_are_told_is_the_one_that_will_block_them(make_user, make_campaign):
    """An earlier campaign that lets the password alone in after its deadline blocks nobody: the date people are
    told (the web's notice, the VPN's message, the audit of a connection let in) is the later deadline, after which
    enrollment is required."""
    person = make_user()
    lenient = make_campaign(days=5, policy_after_deadline=ALLOW)
    blocking = make_campaign(days=20, policy_after_deadline=REQUIRE)
    policy = services.effective_policy(person)
    assert (policy.campaign_id, policy.deadline, policy.password_alone) == (blocking.pk, blocking.deadline, True)
    assert texts.set_up_by(policy) == f"Set up two-step sign-in by {_told(blocking)}"
    # Past the lenient one's deadline the password alone still works, and the date is still the one to come.
    policy = services.effective_policy(person, now=lenient.deadline + timedelta(hours=1))
    assert (policy.deadline, policy.password_alone, policy.past_deadline) == (blocking.deadline, True, False)
    # Past the blocking one's, it blocks, and says when it passed.
    policy = services.effective_policy(person, now=blocking.deadline + timedelta(hours=1))
    assert (policy.campaign_id, policy.password_alone) == (blocking.pk, False)
    assert texts.enroll_first(policy).startswith(f"The deadline for two-step sign-in was {_told(blocking)}.")


def _told(campaign) -> str:
    local = campaign.deadline.astimezone(zoneinfo.ZoneInfo(campaign.time_zone))
    return f"{local.day} {local:%B %Y, %H:%M}"


def test_someone_who_leaves_the_cohort_and_comes_back_is_not_welcomed_again(
    make_user, make_campaign, django_capture_on_commit_callbacks
):
    from campaigns import reminder_tasks, selectors

    mover = make_user(department="Physics")
    campaign = make_campaign(
        cohort="departments", values=["Physics"], time_zone="UTC", **quiet_hours_far_from_now("UTC")
    )
    services.refresh_members(campaign)
    with django_capture_on_commit_callbacks(execute=True):
        reminder_tasks.plan_reminders()
    welcomes = OutboundMessage.objects.filter(user=mover, template__startswith="campaigns:welcome")
    assert welcomes.count() == 1
    mover.department = "History"
    mover.save()
    services.refresh_members(campaign)
    # While away they are not among the campaign's people, and their row stays, with what they had.
    assert not selectors.members_not_enrolled(campaign).filter(person=mover).exists()
    assert Member.objects.filter(campaign=campaign, person=mover).exists()
    with django_capture_on_commit_callbacks(execute=True):
        reminder_tasks.plan_reminders()
    mover.department = "Physics"
    mover.save()
    services.refresh_members(campaign)
    with django_capture_on_commit_callbacks(execute=True):
        reminder_tasks.plan_reminders()
    assert welcomes.count() == 1
    assert OutboundMessage.objects.filter(user=mover, template__startswith="campaigns:").count() == 1
    assert Member.objects.get(campaign=campaign, person=mover).left_at is None


@pytest.mark.parametrize("cohort", ["departments", "groups", "list"])
def test_the_cohort_rule_names_who_is_in(make_user, make_campaign, cohort):
    inside, outside = make_user(department="Physics"), make_user(department="History")
    Group.objects.create(name="Staff 2027").user_set.add(inside)
    values = {"departments": ["Physics"], "groups": ["Staff 2027"], "list": [inside.username, "not-yet-hired"]}
    campaign = make_campaign(cohort=cohort, values=values[cohort])
    assert services.effective_policy(inside).campaign_id == campaign.pk
    assert services.effective_policy(outside) is None


def test_someone_who_joins_the_cohort_later_is_covered_before_any_refresh(make_user, make_campaign):
    campaign = make_campaign(cohort="list", values=["newhire"])
    assert not Member.objects.filter(campaign=campaign).exists()
    hire = make_user("newhire")
    assert services.effective_policy(hire).campaign_id == campaign.pk
    mover = make_user(department="History")
    in_physics = make_campaign(cohort="departments", values=["Physics"])
    mover.department = "Physics"
    mover.save()
    assert services.effective_policy(mover).campaign_id == in_physics.pk


def test_effective_policy_is_one_query(make_user, make_campaign, assert_num_statements):
    person = make_user(department="Physics")
    make_campaign(cohort="departments", values=["Physics"])
    make_campaign(days=3)
    with assert_num_statements(1):
        services.effective_policy(person)


def test_creating_a_campaign_is_audited_with_its_settings_not_its_texts(make_campaign, campaign_staff):
    campaign = make_campaign(cohort="list", values=["a1", "a2", "a1"])
    event = AuditEvent.objects.get(action="campaigns.created")
    details = details_of(event)
    assert event.actor == campaign_staff
    assert details["campaign"] == campaign.pk
    assert details["policy_before_deadline"] == ALLOW
    assert details["cohort_values"] == 2
    assert "email_text" not in details
    assert sorted(campaign.cohort_entries.values_list("value", flat=True)) == ["a1", "a2"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"days": None, "reminder_days": [3]}, "reminder_days"),
        ({"reminder_days": [3, 3]}, "reminder_days"),
        ({"reminder_days": [0]}, "reminder_days"),
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"cohort": "departments"}, "cohort"),
        ({"email_text": " "}, "email_text"),
        ({"name": ""}, "name"),
    ],
)
def test_a_campaign_that_does_not_fit_together_is_refused_and_nothing_is_written(make_campaign, fields, field):
    with pytest.raises(ValidationError) as refused:
        make_campaign(**fields)
    assert field in refused.value.message_dict
    assert not Campaign.objects.exists()
    assert not AuditEvent.objects.filter(action="campaigns.created").exists()


def test_a_deadline_before_the_start_is_refused(make_campaign):
    with pytest.raises(ValidationError) as refused:
        make_campaign(starts_at=timezone.now() + timedelta(days=30), days=3)
    assert "deadline" in refused.value.message_dict


def test_every_change_is_audited_with_what_changed(make_campaign, campaign_staff):
    campaign = make_campaign(cohort="departments", values=["Physics"])
    new_deadline = campaign.deadline + timedelta(days=7)
    services.change_campaign(
        campaign,
        actor=campaign_staff,
        ip="192.0.2.7",
        deadline=new_deadline,
        email_text="New words",
        policy_before_deadline=REQUIRE,
        cohort_values=["Physics", "Chemistry"],
    )
    event = AuditEvent.objects.get(action="campaigns.changed")
    details = details_of(event)
    assert details["deadline"] == [campaign.deadline.isoformat(), new_deadline.isoformat()]
    assert details["policy_before_deadline"] == [ALLOW, REQUIRE]
    assert details["email_text"] == "changed"
    assert (details["cohort_added"], details["cohort_removed"]) == (1, 0)
    assert (event.actor, event.ip) == (campaign_staff, "192.0.2.7")
    campaign.refresh_from_db()
    assert campaign.deadline == new_deadline
    assert sorted(campaign.cohort_entries.values_list("value", flat=True)) == ["Chemistry", "Physics"]


def test_a_change_that_changes_nothing_writes_nothing(make_campaign, campaign_staff):
    campaign = make_campaign()
    services.change_campaign(campaign, actor=campaign_staff, name=campaign.name)
    assert not AuditEvent.objects.filter(action="campaigns.changed").exists()


def test_a_closed_campaign_cannot_be_changed(make_campaign, campaign_staff):
    campaign = make_campaign()
    services.close_campaign(campaign, actor=campaign_staff)
    services.close_campaign(campaign, actor=campaign_staff)
    assert AuditEvent.objects.filter(action="campaigns.closed").count() == 1
    with pytest.raises(ValidationError):
        services.change_campaign(campaign, actor=campaign_staff, name="Again")


def test_the_cohort_rows_follow_the_rule(make_user, make_campaign, settings):
    physicists = [make_user(department="Physics") for _ in range(3)]
    make_user(department="History")
    campaign = make_campaign(cohort="departments", values=["Physics"])
    assert services.refresh_members(campaign) == {"added": 3, "returned": 0, "left": 0}
    assert set(Member.objects.filter(campaign=campaign).values_list("person", flat=True)) == {p.pk for p in physicists}
    reminded_at = timezone.now() - timedelta(days=1)
    Member.objects.filter(person=physicists[0]).update(last_reminded_at=reminded_at)
    physicists[1].department = "History"
    physicists[1].save()
    hire = make_user(department="Physics")
    assert services.refresh_members(campaign) == {"added": 1, "returned": 0, "left": 1}
    members = dict(Member.objects.filter(campaign=campaign, left_at=None).values_list("person", "last_reminded_at"))
    assert members == {physicists[0].pk: reminded_at, physicists[2].pk: None, hire.pk: None}
    assert services.refresh_members(campaign) == {"added": 0, "returned": 0, "left": 0}


@pytest.mark.django_db(transaction=True)
def test_refresh_counts_only_the_rows_it_inserted(make_user, make_campaign):
    """Another refresh adds two of the four people first (not committed yet when this one reads who is missing):
    this one's insert waits for it, then leaves those two, and says it added two."""
    people = [make_user(department="Physics") for _ in range(4)]
    campaign = make_campaign(cohort="departments", values=["Physics"])
    other = connections.create_connection(DEFAULT_DB_ALIAS)
    other.set_autocommit(False)
    with other.cursor() as cursor:
        for person in people[:2]:
            cursor.execute(
                "INSERT INTO campaigns_member (campaign_id, person_id, added_at) VALUES (%s, %s, now())",
                [campaign.pk, person.pk],
            )
    pids: queue.Queue = queue.Queue()
    results = []

    def refresh():
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                pids.put(cursor.fetchone()[0])
            results.append(services.refresh_members(campaign))
        finally:
            connection.close()

    worker = threading.Thread(target=refresh)
    worker.start()
    try:
        pid = pids.get(timeout=20)

        def blocked():
            with connection.cursor() as cursor:
                cursor.execute("SELECT cardinality(pg_blocking_pids(%s)) > 0", [pid])
                return cursor.fetchone()[0]

        wait_for(blocked)
    finally:
        other.commit()
        other.close()
        worker.join(timeout=20)
    assert results == [{"added": 2, "returned": 0, "left": 0}]
    assert Member.objects.filter(campaign=campaign).count() == 4


@pytest.mark.parametrize("cohort", [kind for kind, _ in Campaign.Cohort.choices])
def test_the_rule_read_per_person_and_per_campaign_agree(cohort, make_user, make_campaign):
    """One cohort rule: the campaigns a person is in (the doors) and the people a campaign names (its rows) agree for
    everyone, of every kind of cohort, the inactive and those with no department included."""
    nurses, doctors = Group.objects.create(name="Nurses"), Group.objects.create(name="Doctors")
    people = [
        make_user("p-in", department="Physics"),
        make_user("p-out", department="History"),
        make_user("p-none"),
        make_user("p-left", department="Physics", is_active=False),
        make_user("nurse", department="History"),
        make_user("doctor"),
        make_user("nurse-left", is_active=False),
    ]
    for username, group in (("nurse", nurses), ("doctor", doctors), ("nurse-left", nurses)):
        next(p for p in people if p.username == username).groups.add(group)
    values = {
        "everyone": [],
        "departments": ["Physics"],
        "groups": ["Nurses"],
        "list": ["p-in", "p-left", "doctor", "not-yet-hired"],
    }[cohort]
    campaign = make_campaign(cohort=cohort, values=values)
    by_campaign = set(services.cohort_people(campaign).filter(pk__in=[p.pk for p in people]))
    by_person = {person for person in people if services.campaigns_of(person).filter(pk=campaign.pk).exists()}
    assert by_person == by_campaign
    assert by_campaign  # someone is in each
    assert all(person.is_active for person in by_campaign)
    assert by_campaign != set(people)  # and someone is not


def test_refresh_in_batches_adds_each_person_once(make_user, make_campaign, monkeypatch):
    people = [make_user() for _ in range(7)]
    campaign = make_campaign()
    monkeypatch.setattr(services, "REFRESH_BATCH", 3)
    assert services.refresh_members(campaign)["added"] == len(people) + 1  # and the campaign's staff member
    assert services.refresh_members(campaign)["added"] == 0


def test_pasted_ids_are_read_in_any_layout():
    text = "a1, a2;a3\n\n a4\ta5\r\na1\n"
    assert services.parse_institution_ids(text) == ["a1", "a2", "a3", "a4", "a5"]
    assert services.parse_cohort_values("Physics\n Chemistry \n\nPhysics") == ["Physics", "Chemistry"]


def test_members_due_a_step_are_those_not_enrolled_who_have_not_had_it(make_user, make_campaign, enroll):
    from campaigns import selectors

    waiting, reminded, enrolled, gone = (make_user(department="Physics") for _ in range(4))
    enroll(enrolled)
    campaign = make_campaign(cohort="departments", values=["Physics"])
    services.refresh_members(campaign)
    reminded_at = timezone.now()
    Member.objects.filter(person=reminded).update(last_reminded_at=reminded_at)
    gone.is_active = False
    gone.save()
    assert set(selectors.members_due(campaign, reminded_at).values_list("person", flat=True)) == {waiting.pk}
    later = reminded_at + timedelta(seconds=1)
    assert set(selectors.members_due(campaign, later).values_list("person", flat=True)) == {waiting.pk, reminded.pk}


def test_beat_refreshes_every_open_campaign_and_leaves_closed_ones(make_user, make_campaign, campaign_staff):
    from campaigns import tasks

    open_one, closed = make_campaign(), make_campaign()
    services.close_campaign(closed, actor=campaign_staff)
    person = make_user()
    tasks.refresh_open_campaigns()  # its per-campaign tasks run eagerly here
    assert set(Member.objects.filter(person=person).values_list("campaign", flat=True)) == {open_one.pk}
