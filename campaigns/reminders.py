"""A campaign's welcome and reminders: when each is due, and queuing the one due for its people, a batch at a time.

The schedule (:func:`schedule`) is the welcome, due at the start, then the reminder days before the deadline, the
largest number first. Only the latest point due is ever sent: a person who joins the cohort later (a new hire from the
directory) gets the welcome, which stands for every point already past, and then the reminders still to come; a
point missed while beat was down is not sent late beside the next one. Nothing goes out during the campaign's quiet
hours, in its time zone, or after its deadline.

Who is due is read from when each person last had a message (``Member.last_reminded_at``) against the schedule as it
is now, never from a position in it: after staff change the reminder days or the deadline, a person who had a message
after a point does not get it again, and a person who had nothing since the point due now gets it.

Exactly once per person and point: a batch locks its members' rows (``FOR UPDATE SKIP LOCKED``, the member rows only,
never the people table), sets their ``last_reminded_at`` and writes their messages to the outbox in one transaction.
A second planner (beat running twice) skips the locked rows and finds the others reminded since the point; a worker
killed mid-batch rolls its transaction back, and the next run takes the same people again. The people are read in
order of their id, ``REMINDER_BATCH_SIZE`` at a time, by index, so memory does not grow with the cohort. The outbox
carries the messages in its bulk lanes (sign-in codes never wait behind them), and a batch waits while more than
``REMINDER_BACKLOG`` of them are still on their way, so the outbox stays small however large the cohort. A message
whose person enrolled, left the cohort or was deactivated before its turn came, or whose campaign was closed
meanwhile, is not sent (:func:`campaigns.nudges.unwanted`).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from devices import outbox
from devices.models import OutboundMessage

from .models import Campaign, Member
from .people import proven_number
from .selectors import members_due

TEMPLATE_PREFIX = "campaigns"
KINDS = ("welcome", "reminder")


def template_of(kind: str, campaign_id: int) -> str:
    """The outbox template of a campaign's message: its kind and its campaign, so that the check at send time
    (:func:`campaigns.nudges.unwanted`) knows which campaign it is for."""
    return f"{TEMPLATE_PREFIX}:{kind}:{campaign_id}"


def schedule(campaign: Campaign) -> list[tuple[int | None, datetime]]:
    """The campaign's points in time, the welcome first: ``(None, start)``, then ``(days, the deadline less that many
    days)`` for each reminder day, the largest first; a point in the quiet hours moved to their end."""
    points: list[tuple[int | None, datetime]] = [(None, end_of_quiet(campaign, campaign.starts_at))]
    if campaign.deadline is not None:
        for days in sorted({int(d) for d in campaign.reminder_days or []}, reverse=True):
            points.append((days, end_of_quiet(campaign, campaign.deadline - timedelta(days=days))))
    return points


def step_times(campaign: Campaign) -> list[datetime]:
    """When each point of :func:`schedule` is due, the welcome first."""
    return [at for _, at in schedule(campaign)]


def _zone(campaign: Campaign) -> ZoneInfo:
    return ZoneInfo(campaign.time_zone or settings.TIME_ZONE)


def is_quiet(campaign: Campaign, moment: datetime) -> bool:
    """Whether ``moment`` falls in the campaign's quiet hours (a window that may cross midnight), in its time zone."""
    local = moment.astimezone(_zone(campaign)).time()
    start, end = campaign.quiet_from, campaign.quiet_until
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def end_of_quiet(campaign: Campaign, moment: datetime) -> datetime:
    """``moment`` itself outside the quiet hours; inside them, the moment they end (in the campaign's time zone)."""
    if not is_quiet(campaign, moment):
        return moment
    local = moment.astimezone(_zone(campaign))
    end = local.replace(hour=campaign.quiet_until.hour, minute=campaign.quiet_until.minute, second=0, microsecond=0)
    if end <= local:
        end += timedelta(days=1)
    return end


def due_at(campaign: Campaign, now: datetime | None = None) -> datetime | None:
    """The point of the schedule due now (the latest whose time has come), or None: not started, closed, past the
    deadline, or quiet hours. A reminder due before the start is covered by the welcome and never sent.

    A member is due it when they have had no message since it (``Member.last_reminded_at`` before it, or none):
    read against the schedule as it is now, so a change of reminder days or deadline takes effect at once."""
    now = now or timezone.now()
    if campaign.closed_at is not None or now < campaign.starts_at or is_quiet(campaign, now):
        return None
    if campaign.deadline is not None and now >= campaign.deadline:
        return None
    times = step_times(campaign)
    due = [at for index, at in enumerate(times) if at <= now and (index == 0 or at >= times[0])]
    return max(due) if due else None


def campaigns_due_now(now: datetime | None = None) -> list[int]:
    """The open campaigns with a point of their schedule due now (see :func:`due_at`)."""
    now = now or timezone.now()
    running = Campaign.objects.filter(closed_at__isnull=True, starts_at__lte=now).exclude(deadline__lte=now)
    return [campaign.pk for campaign in running if due_at(campaign, now) is not None]


@dataclass(frozen=True)
class Batch:
    queued: int  # people whose message went to the outbox
    last_person_id: int | None  # where the next batch starts; None when this one was the last
    # The outbox's bulk lanes are full (either chain), or a nudge chain in quiet hours: try again later.
    waiting: bool = False
    # A nudge chain in quiet hours: try again when they end, not before. A reminder chain does not wait out quiet
    # hours: nothing is due in them (:func:`due_at`), so the batch ends the chain, and beat's next run after
    # the quiet hours starts it again from the people still without the message due.
    resume_at: datetime | None = None


def queue_reminder_batch(campaign_id: int, *, after_person_id: int = 0, size: int | None = None) -> Batch:
    """Queue the point due now (:func:`due_at`) for the next ``size`` people (by id, after ``after_person_id``) of the
    campaign who are not enrolled, are still in its cohort and have had no message since that point: the welcome to
    those who have had none, else a reminder; an email each, and a text to those with a proven number when the
    campaign has one.

    Sets ``Member.last_reminded_at`` and writes outbox rows in one transaction (exactly once per person and point,
    see the module). Does nothing when no point is due (not started, the deadline passed, quiet hours, closed), and
    waits when the outbox's bulk lanes hold ``REMINDER_BACKLOG`` messages. Audits nothing per person: the outbox
    rows are the record, and the progress page counts them.
    """
    size = size or settings.REMINDER_BATCH_SIZE
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    point = due_at(campaign) if campaign is not None else None
    if campaign is None or point is None:
        return Batch(0, None)
    if outbox.bulk_backlog() >= settings.REMINDER_BACKLOG:
        return Batch(0, after_person_id, waiting=True)
    with transaction.atomic():
        members = list(
            members_due(campaign, point)
            .filter(person_id__gt=after_person_id)
            .order_by("person_id")
            .select_for_update(skip_locked=True, of=("self",))
            .annotate(number=proven_number())
            .values_list("pk", "person_id", "last_reminded_at", "person__email", "person__first_name", "number")[:size]
        )
        if not members:
            return Batch(0, None)
        Member.objects.filter(pk__in=[row[0] for row in members]).update(last_reminded_at=timezone.now())
        shared = message_context(campaign)  # once a batch: only the name differs from person to person
        outbox.queue_bulk([message for row in members for message in _messages(campaign, shared, *row[1:])])
    last = members[-1][1]
    return Batch(len(members), last if len(members) == size else None)


def _messages(
    campaign: Campaign, shared: dict, person_id: int, reminded_at: datetime | None, email: str, first_name: str, number
):
    kind = "welcome" if reminded_at is None else "reminder"
    template = template_of(kind, campaign.pk)
    context = personal(campaign, shared, first_name)
    messages = []
    if email:
        messages.append(
            {
                "user_id": person_id,
                "channel": OutboundMessage.Channel.EMAIL,
                "recipient": email,
                "template": template,
                "subject": fill(campaign.email_subject, context),
                "body": outbox.render_text(f"campaigns/emails/{kind}.txt", context),
            }
        )
    if number and campaign.sms_text:
        messages.append(
            {
                "user_id": person_id,
                "channel": OutboundMessage.Channel.SMS,
                "recipient": str(number),
                "template": template,
                "body": outbox.render_text("campaigns/texts/reminder.txt", context).strip(),
            }
        )
    return messages


AFTER_DEADLINE: dict[str, str] = {
    Campaign.Policy.REQUIRE_ENROLLMENT: (
        "After that date you can no longer sign in to the VPN or the web site with your password alone: "
        "you will be sent to set up two-step sign-in first."
    ),
    Campaign.Policy.ALLOW_PASSWORD_ALONE: "After that date your password alone still lets you in, for now.",
}


def fill(text: str, context: dict) -> str:
    """The campaign's own words with its placeholders filled: ``{deadline}``, ``{address}`` (where to start) and
    ``{name}`` (the person's first name). Plain replacement, never ``str.format``: the text is staff input."""
    for placeholder, value in (
        ("{deadline}", context["deadline"]),
        ("{address}", context["start_url"]),
        ("{name}", context["first_name"]),
    ):
        text = text.replace(placeholder, value)
    return text


def personal(campaign: Campaign, shared: dict, first_name: str) -> dict:
    """A batch's :func:`message_context` for one person: their name, and the texts' ``{name}`` filled."""
    context = {**shared, "first_name": first_name}
    context["email_text"] = fill(campaign.email_text, context)
    context["sms_text"] = fill(campaign.sms_text, context)
    return context


def deadline_words(campaign: Campaign) -> str:
    """The campaign's deadline as its messages and its owner's summary say it: in the campaign's time zone (the
    institution's unless staff chose another), named, so that nobody reads it in a zone of their own; "" without
    one."""
    if campaign.deadline is None:
        return ""
    return f"{campaign.deadline.astimezone(_zone(campaign)):%A %-d %B %Y, %H:%M} ({campaign.time_zone})"


def message_context(campaign: Campaign, *, first_name: str = "") -> dict:
    """What every message of a campaign says: the deadline in its time zone, what happens after it, where to start,
    and the campaign's own words with their placeholders filled (:func:`fill`)."""
    deadline = campaign.deadline.astimezone(_zone(campaign)) if campaign.deadline else None
    context = {
        "campaign": campaign,
        "first_name": first_name,
        "deadline": deadline_words(campaign),
        "short_deadline": f"{deadline:%-d %b %Y}" if deadline else "",
        "after_deadline": AFTER_DEADLINE.get(campaign.policy_after_deadline, ""),
        "start_url": f"{settings.SITE_URL}{reverse('devices:start')}",
        "devices_url": f"{settings.SITE_URL}{reverse('devices:my_devices')}",
        "institution": settings.INSTITUTION_NAME,
    }
    context["email_text"] = fill(campaign.email_text, context)
    context["sms_text"] = fill(campaign.sms_text, context)
    return context
