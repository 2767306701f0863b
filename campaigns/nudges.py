"""Resilience nudges: the people of a campaign who are enrolled but one lost phone away from the help desk.

Three kinds of person end up at the desk: one whose only factor is a code by text or call, one with a single
device, one with no backup codes. Staff may have a campaign nudge them, once per person and campaign ("add the
app", "add a second device", "print backup codes", whichever apply); the progress page counts them either way.

Sent as the reminders are (:mod:`campaigns.reminders`): a batch locks its members' rows, writes a ``Nudge`` per person
(unique per campaign and person) and the emails in one transaction, in the outbox's bulk lanes, never in quiet hours.
A nudge whose person has fixed all of it before its turn came is not sent.
"""

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from devices import outbox
from devices.models import OutboundMessage
from devices.selectors import enrolled
from identity.models import User

from .models import Campaign, Nudge
from .people import AT_RISK, at_risk_annotations
from .reminders import Batch, end_of_quiet, is_quiet, message_context, personal, template_of
from .selectors import current_members
from .services import campaigns_of


def at_risk_members(campaign: Campaign):
    """The campaign's members (those still in its cohort) who are enrolled and at risk (text only, a single device,
    or no backup codes)."""
    return current_members(campaign).annotate(**at_risk_annotations()).filter(AT_RISK)


def queue_nudge_batch(campaign_id: int, *, after_person_id: int = 0, size: int | None = None) -> Batch:
    """Nudge the next ``size`` members at risk (by person id, after ``after_person_id``) not nudged yet and with an
    email address: a ``Nudge`` row and an email each, in one transaction. Waits while the outbox's bulk lanes are
    full, and in quiet hours until they end (``Batch.resume_at``)."""
    size = size or settings.REMINDER_BATCH_SIZE
    campaign = Campaign.objects.filter(pk=campaign_id, closed_at__isnull=True).first()
    if campaign is None:
        return Batch(0, None)
    now = timezone.now()
    if is_quiet(campaign, now):
        return Batch(0, after_person_id, waiting=True, resume_at=end_of_quiet(campaign, now))
    if outbox.bulk_backlog() >= settings.REMINDER_BACKLOG:
        return Batch(0, after_person_id, waiting=True)
    with transaction.atomic():
        members = list(
            at_risk_members(campaign)
            .filter(person_id__gt=after_person_id, person__is_active=True)
            # A nudge is an email: a person without an address gets no row (the progress page counts the rows as
            # "nudged") and is nudged by a later run once they have one.
            .exclude(person__email="")
            .exclude(Exists(Nudge.objects.filter(campaign=campaign, person_id=OuterRef("person_id"))))
            .order_by("person_id")
            .select_for_update(skip_locked=True, of=("self",))
            .values_list("person_id", "person__email", "person__first_name", "text_only", "devices", "backup_codes")[
                :size
            ]
        )
        if not members:
            return Batch(0, None)
        Nudge.objects.bulk_create([Nudge(campaign=campaign, person_id=row[0]) for row in members])
        shared = message_context(campaign)
        outbox.queue_bulk(
            [
                {
                    "user_id": person_id,
                    "channel": OutboundMessage.Channel.EMAIL,
                    "recipient": email,
                    "template": template_of("nudge", campaign.pk),
                    "subject": f"{settings.INSTITUTION_NAME}: make sure you can always sign in",
                    "body": outbox.render_text(
                        "campaigns/emails/nudge.txt",
                        {
                            **personal(campaign, shared, first_name),
                            "text_only": text_only,
                            "single_device": devices == 1,
                            "no_backup_codes": not backup_codes,
                        },
                    ),
                }
                for person_id, email, first_name, text_only, devices, backup_codes in members
            ]
        )
    return Batch(len(members), members[-1][0] if len(members) == size else None)


def still_at_risk(person_id: int) -> bool:
    return User.objects.filter(pk=person_id).annotate(**at_risk_annotations("pk")).filter(AT_RISK).exists()


def unwanted(message: OutboundMessage) -> str | None:
    """Asked by the outbox when a worker claims one of the campaigns' bulk messages: why it should not go now, or None.

    A welcome or reminder goes only to a person still active and not enrolled (``devices.selectors.enrolled``, as the
    doors count it), a nudge only to one still at risk; and either only while its campaign is open and its cohort
    rule still names the person (read now, as the doors read it: the cohort's rows may be an hour behind). The reason
    is recorded on the message, which is expired unsent. A message queued before its template named its campaign
    is checked for the person alone."""
    if message.user_id is None:  # bulk messages always name their person; a row without one is not ours to send
        return "it names no person"
    person = User.objects.filter(pk=message.user_id, is_active=True).first()
    if person is None:
        return "the person was deactivated"
    _, kind, campaign_id = (message.template.split(":") + [""])[:3]
    if campaign_id:
        campaign = Campaign.objects.filter(pk=int(campaign_id)).first()
        if campaign is None or campaign.closed_at is not None:
            return "the campaign was closed"
        if not campaigns_of(person).filter(pk=campaign.pk).exists():
            return "the person is no longer in the campaign's cohort"
    if kind == "nudge":
        return None if still_at_risk(person.pk) else "the person is no longer at risk"
    if User.objects.filter(pk=person.pk).filter(enrolled("pk")).exists():
        return "the person has enrolled"
    return None
