"""Reminders through the outbox: once per person and step, only to people not enrolled, never at night, texts only to
a proven number, the welcome and the remaining steps for a person who joins later."""

import time as time_module
from datetime import UTC, datetime, time, timedelta

import pytest
from django.core import mail
from django.utils import timezone

from campaigns import reminder_tasks as tasks
from campaigns import reminders
from campaigns import services as services_campaigns
from campaigns.models import Member
from campaigns.progress import campaign_progress
from campaigns.tests.support import add_members, quiet_hours_far_from_now, running_campaign
from devices import outbox, services
from devices.models import OutboundMessage, Registration
from devices.tests.fakes import RecordingGateway
from devices.tests.helpers import add_app_device, put_on_record

pytestmark = pytest.mark.django_db

Status = OutboundMessage.Status


def campaign_messages(**filters):
    return OutboundMessage.objects.filter(template__startswith="campaigns:", **filters)


def test_steps_fall_on_the_schedule_and_never_in_quiet_hours():
    deadline = datetime(2027, 3, 1, 17, 0, tzinfo=UTC)  # noon in New York
    campaign = running_campaign(quiet_from=time(20, 0), quiet_until=time(8, 0))
    campaign.starts_at, campaign.deadline = deadline - timedelta(days=30), deadline
    times = reminders.step_times(campaign)
    assert [days for days, _ in reminders.schedule(campaign)] == [None, 14, 7, 3, 1]
    assert times[0] == campaign.starts_at
    assert times[1:] == [deadline - timedelta(days=d) for d in (14, 7, 3, 1)]
    assert reminders.due_at(campaign, deadline - timedelta(days=20)) == times[0]
    assert reminders.due_at(campaign, deadline - timedelta(days=7)) == times[2]
    assert reminders.due_at(campaign, deadline - timedelta(hours=1)) == times[4]
    assert reminders.due_at(campaign, deadline) is None  # past the deadline: nothing more
    assert reminders.due_at(campaign, campaign.starts_at - timedelta(seconds=1)) is None
    # 03:00 in New York is quiet; a step due at night waits for 08:00 there.
    night = datetime(2027, 2, 22, 8, 0, tzinfo=UTC)
    assert reminders.is_quiet(campaign, night)
    assert reminders.due_at(campaign, night) is None
    campaign.deadline = datetime(2027, 3, 1, 7, 0, tzinfo=UTC)  # 02:00 in New York
    assert reminders.step_times(campaign)[-1] == datetime(2027, 2, 28, 13, 0, tzinfo=UTC)  # 08:00 there


def test_each_person_not_enrolled_gets_the_step_once_however_often_it_runs(
    make_user, enroll, settings, django_capture_on_commit_callbacks
):
    settings.REMINDER_BATCH_SIZE = 2
    campaign = running_campaign()
    people = [make_user() for _ in range(5)]
    enroll(people[1])
    add_members(campaign, people)
    assert reminders.due_at(campaign) == campaign.starts_at

    with django_capture_on_commit_callbacks(execute=True):
        tasks.plan_reminders()  # eager: the chain of batches runs to its end in-process
        tasks.plan_reminders()  # beat running twice
        tasks.queue_reminders(campaign.pk, 0)

    expected = {p.email for i, p in enumerate(people) if i != 1}
    assert sorted(campaign_messages().values_list("recipient", flat=True)) == sorted(expected)
    assert set(campaign_messages().values_list("status", flat=True)) == {Status.SENT}
    assert sorted(m.to[0] for m in mail.outbox) == sorted(expected)
    reminded = dict(Member.objects.filter(campaign=campaign).values_list("person_id", "last_reminded_at"))
    assert {pk for pk, at in reminded.items() if at is not None} == {p.pk for i, p in enumerate(people) if i != 1}
    assert set(campaign_messages().values_list("bulk", flat=True)) == {True}


def test_the_text_says_the_deadline_what_follows_and_where_to_start(
    make_user, settings, django_capture_on_commit_callbacks
):
    settings.SITE_URL = "https://mfa.example.edu"
    campaign = running_campaign(
        deadline_in=timedelta(days=10),
        time_zone="Europe/Paris",
        email_text="Hello {name}: by {deadline}, at {address}.",
    )
    add_members(campaign, [make_user(first_name="Ana")])
    with django_capture_on_commit_callbacks(execute=True):
        reminders.queue_reminder_batch(campaign.pk)
    body = mail.outbox[0].body
    local = timezone.localtime(campaign.deadline, timezone=__import__("zoneinfo").ZoneInfo("Europe/Paris"))
    assert f"Set up two-step sign-in by {local:%A %-d %B %Y, %H:%M} (Europe/Paris)." in body
    assert "you will be sent to set up two-step sign-in first" in body
    assert "https://mfa.example.edu/enroll/" in body
    assert "Dear Ana," in body
    # The campaign's own words, placeholders filled.
    assert f"Hello Ana: by {local:%A %-d %B %Y, %H:%M} (Europe/Paris), at https://mfa.example.edu/enroll/." in body


def test_a_person_who_joins_later_gets_the_welcome_then_only_the_steps_still_to_come(make_user):
    campaign = running_campaign(starts_in=timedelta(days=-20), deadline_in=timedelta(days=2, hours=12))
    early, late = make_user(), make_user()
    add_members(campaign, [early])
    # The early person had the welcome and the 14- and 7-day reminders; the 3-day one is due now.
    times = reminders.step_times(campaign)
    Member.objects.filter(person=early).update(last_reminded_at=times[2] + timedelta(minutes=5))
    assert reminders.due_at(campaign) == times[3]
    add_members(campaign, [late], added_at=timezone.now())
    reminders.queue_reminder_batch(campaign.pk)
    templates = dict(campaign_messages().values_list("recipient", "template"))
    assert templates == {
        early.email: f"campaigns:reminder:{campaign.pk}",
        late.email: f"campaigns:welcome:{campaign.pk}",
    }
    assert reminders.queue_reminder_batch(campaign.pk).queued == 0  # once
    # The next point (1 day before) reaches both.
    later = campaign.deadline - timedelta(hours=23)
    assert reminders.due_at(campaign, later) == times[4]


def test_an_enrolled_person_gets_nothing_and_one_who_enrolls_before_the_send_is_skipped(make_user, enroll):
    campaign = running_campaign()
    waiting, enrolled = make_user(), make_user()
    enroll(enrolled)
    add_members(campaign, [waiting, enrolled])
    reminders.queue_reminder_batch(campaign.pk)  # its dispatch waits for a commit that never comes here
    queued = campaign_messages().get()
    assert queued.recipient == waiting.email
    enroll(waiting)  # before the worker's turn came
    outbox.deliver_message(queued.pk)
    queued.refresh_from_db()
    assert queued.status == Status.EXPIRED
    assert mail.outbox == []


def test_a_person_deactivated_before_the_send_is_skipped(make_user):
    campaign = running_campaign()
    leaver = make_user()
    add_members(campaign, [leaver])
    reminders.queue_reminder_batch(campaign.pk)
    queued = campaign_messages().get()
    leaver.is_active = False  # the directory's leaver, after the welcome was queued
    leaver.save(update_fields=["is_active"])
    outbox.deliver_message(queued.pk)
    queued.refresh_from_db()
    assert queued.status == Status.EXPIRED
    assert mail.outbox == []


def test_texts_go_only_to_a_number_proven_on_a_setup_never_finished(
    make_user, settings, django_capture_on_commit_callbacks
):
    """Everyone here is not enrolled and due the welcome. A text goes only to a mobile number the person proved with
    a code while setting up, and never finished: not to a number only typed, nor to the number of a phone that
    worked and was reported lost (it may be in other hands)."""
    settings.PHONE_GATEWAY = "devices.tests.fakes.RecordingGateway"
    RecordingGateway.delivered.clear()
    campaign = running_campaign(sms_text="IT: two-step sign-in.")
    abandoned, typed_only, lost_it = (make_user() for _ in range(3))
    now = timezone.now

    def prove(registration, person, channel, number):
        with django_capture_on_commit_callbacks(execute=True):
            services.send_phone_code(registration, channel=channel, actor=person, verified_at=now())
        code = RecordingGateway.last_to(number).code
        return services.confirm_phone_code(registration, code=code, actor=person, verified_at=now())

    # The number was someone else's once, so the wizard makes them prove it; then they stop before the app.
    put_on_record(make_user(), "+16175550161", "retired")
    setup = services.start_enrollment(abandoned, kind="mobile", verified_at=now())
    setup = services.set_phone_number(setup, phone_number="+16175550161", actor=abandoned, verified_at=now())
    assert prove(setup, abandoned, "sms", "+16175550161").status == Registration.Status.PENDING

    setup = services.start_enrollment(typed_only, kind="mobile", verified_at=now())
    services.set_phone_number(setup, phone_number="+16175550162", actor=typed_only, verified_at=now())

    phone = add_app_device(lost_it, kind="mobile", number="+16175550164")
    prove(phone, lost_it, "sms", "+16175550164")
    services.report_lost(phone, actor=lost_it, verified_at=now())

    add_members(campaign, [abandoned, typed_only, lost_it])
    assert reminders.queue_reminder_batch(campaign.pk).queued == 3
    texts = campaign_messages(channel=OutboundMessage.Channel.SMS)
    assert list(texts.values_list("user_id", "recipient")) == [(abandoned.pk, "+16175550161")]
    assert campaign_messages(channel=OutboundMessage.Channel.EMAIL).count() == 3


def test_plain_text_reminders_keep_names_as_written(make_user, django_capture_on_commit_callbacks):
    campaign = running_campaign(email_text="From R&D's team, {name}.", sms_text="R&D: {name}.")
    add_members(campaign, [make_user(first_name="Dónal O'Brien & <co>")])
    with django_capture_on_commit_callbacks(execute=True):
        reminders.queue_reminder_batch(campaign.pk)
    body = mail.outbox[0].body
    assert "Dear Dónal O'Brien & <co>," in body
    assert "From R&D's team, Dónal O'Brien & <co>." in body
    assert "&#x27;" not in body and "&amp;" not in body


def test_a_batch_waits_while_the_bulk_lanes_are_full(make_user, settings):
    settings.REMINDER_BACKLOG = 1
    campaign = running_campaign()
    add_members(campaign, [make_user()])
    OutboundMessage.objects.create(
        channel="email", recipient="x@example.edu", template="campaigns:welcome:1", bulk=True
    )
    batch = reminders.queue_reminder_batch(campaign.pk, after_person_id=7)
    assert batch.waiting and batch.last_person_id == 7
    assert Member.objects.get(campaign=campaign).last_reminded_at is None


def _plan(capture) -> None:
    with capture(execute=True):
        tasks.plan_reminders()


def test_a_point_added_before_the_last_message_is_not_sent_again(
    make_user, campaign_staff, django_capture_on_commit_callbacks
):
    """The welcome went out after the 7-day point had passed; staff then add a 6-day reminder, also past. The person
    has had a message since it: nothing again (a position in the schedule would have read "6 days" as a new step)."""
    campaign = running_campaign(
        starts_in=timedelta(days=-20),
        deadline_in=timedelta(days=4),
        reminder_days=[14, 7],
        **quiet_hours_far_from_now(),
    )
    person = make_user()
    add_members(campaign, [person])
    _plan(django_capture_on_commit_callbacks)
    assert campaign_messages(user=person).count() == 1
    services_campaigns.change_campaign(campaign, actor=campaign_staff, reminder_days=[14, 7, 5])
    _plan(django_capture_on_commit_callbacks)
    assert campaign_messages(user=person).count() == 1
    # Moving the deadline earlier brings no point past the message either.
    services_campaigns.change_campaign(
        campaign, actor=campaign_staff, deadline=campaign.deadline - timedelta(days=1, hours=12)
    )
    _plan(django_capture_on_commit_callbacks)
    assert campaign_messages(user=person).count() == 1


def test_a_point_that_comes_after_the_last_message_is_sent_whatever_its_place(
    make_user, campaign_staff, django_capture_on_commit_callbacks
):
    """The welcome went out at the 7-day point (the third of the schedule); staff then make the reminders 3 days
    only, a point that comes two seconds later and is first in the new schedule. It is due, and sent once."""
    now = timezone.now()
    campaign = running_campaign(
        starts_in=timedelta(days=-20),
        deadline_in=timedelta(days=3, seconds=2),
        reminder_days=[14, 7],
        **quiet_hours_far_from_now(),
    )
    person = make_user()
    add_members(campaign, [person])
    _plan(django_capture_on_commit_callbacks)
    assert campaign_messages(user=person).count() == 1
    campaign = services_campaigns.change_campaign(campaign, actor=campaign_staff, reminder_days=[3])
    point = reminders.step_times(campaign)[1]
    assert point > now
    wait = (point - timezone.now()).total_seconds() + 0.2
    time_module.sleep(max(wait, 0))
    _plan(django_capture_on_commit_callbacks)
    _plan(django_capture_on_commit_callbacks)
    templates = list(campaign_messages(user=person).order_by("pk").values_list("template", flat=True))
    assert [template.split(":")[1] for template in templates] == ["welcome", "reminder"]
    # The progress page counts them by the latest point of the schedule they had.
    assert campaign_progress(campaign).reminders_sent == [(3, 1)]


@pytest.mark.parametrize("change", ["closed", "left the cohort"])
def test_mail_queued_before_the_campaign_closed_or_the_person_left_its_cohort_is_not_sent(
    change, make_user, campaign_staff
):
    campaign = running_campaign(cohort="departments")
    campaign.cohort_entries.create(value="Physics")
    person = make_user(department="Physics")
    add_members(campaign, [person])
    tasks.plan_reminders()  # queued; the dispatch waits for a commit that never comes here
    queued = campaign_messages().get()
    if change == "closed":
        services_campaigns.close_campaign(campaign, actor=campaign_staff)
        reason = "the campaign was closed"
    else:
        person.department = "History"  # a mover, before the cohort's rows are refreshed
        person.save(update_fields=["department"])
        reason = "the person is no longer in the campaign's cohort"
    outbox.deliver_message(queued.pk)
    queued.refresh_from_db()
    assert queued.status == Status.EXPIRED
    assert reason in queued.last_error
    assert mail.outbox == []


def test_a_nudge_queued_before_the_campaign_closed_is_not_sent(make_user, enroll, campaign_staff):
    from campaigns.nudges import queue_nudge_batch

    campaign = running_campaign()
    person = make_user()
    enroll(person)  # one device, no backup codes: at risk
    add_members(campaign, [person])
    assert queue_nudge_batch(campaign.pk).queued == 1
    queued = campaign_messages().get()
    services_campaigns.close_campaign(campaign, actor=campaign_staff)
    outbox.deliver_message(queued.pk)
    queued.refresh_from_db()
    assert (queued.status, mail.outbox) == (Status.EXPIRED, [])
    assert "the campaign was closed" in queued.last_error
