"""Campaigns: the policy a person not yet enrolled gets (:func:`effective_policy`), a campaign's life (created,
changed, closed; each audited), its cohort as rows (:func:`refresh_members`), and the audit of a connection let in
without a second factor.

The doors ask :func:`effective_policy` only once they know the person has no device a door can use: an enrolled
person's check never reaches this module.
"""

import re
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.db.models.expressions import Combinable
from django.utils import timezone

from identity import audit
from identity.models import User

from .models import Campaign, CohortEntry, Member

Policy = Campaign.Policy


@dataclass(frozen=True)
class PersonPolicy:
    """What a person not yet enrolled may do now, and the campaign that says so.

    ``password_alone``: True when the VPN may let them in with their password alone (every campaign of theirs
    allows it now); False when they must enroll first. ``campaign_id`` and ``campaign_name`` name the campaign that
    decides (:func:`_deciding_campaign`), and ``deadline`` is that campaign's (None when it has none): the date people
    are told is the one that blocks them, or will, never an earlier one of a campaign that lets them in after it.
    """

    campaign_id: int
    campaign_name: str
    deadline: datetime | None
    password_alone: bool
    now: datetime
    # The time zone of the campaign whose deadline this is: the date people are told is read there.
    time_zone: str = "UTC"

    @property
    def past_deadline(self) -> bool:
        return self.deadline is not None and self.now >= self.deadline


def _policy_now(campaign: Campaign, now: datetime) -> str:
    if campaign.deadline is not None and now >= campaign.deadline:
        return campaign.policy_after_deadline
    return campaign.policy_before_deadline


def _deadline_order(campaign: Campaign) -> tuple:
    # Earliest deadline first; a campaign without one comes last.
    return (campaign.deadline is None, campaign.deadline or datetime.max.replace(tzinfo=UTC), campaign.pk)


def _deciding_campaign(found: list[Campaign], now: datetime) -> tuple[Campaign, bool]:
    """Of a person's campaigns (earliest deadline first), the one whose deadline applies to them, and whether the
    password alone is allowed now: the one rule for "the deadline that applies to this person".

    - a campaign requires enrollment now: the earliest such one (it blocks them; its deadline is the one that passed,
      or the one to come for a campaign that requires enrollment before its deadline);
    - else the earliest deadline of a campaign that requires enrollment after it (the one that will block them);
    - else (no campaign will ever block them) the earliest deadline of all.
    """
    requiring = [c for c in found if _policy_now(c, now) == Policy.REQUIRE_ENROLLMENT]
    if requiring:
        return requiring[0], False
    blocking = [c for c in found if c.deadline is not None and c.policy_after_deadline == Policy.REQUIRE_ENROLLMENT]
    return (blocking or found)[0], True


# --- Who a cohort rule names: one rule, read per person (the doors) and per campaign (its rows) ----------------

# For each kind of cohort, the values a person carries that its entries are matched against, as a query of one
# column, ``value``, over the person whose id is given (a value or an outer reference). "Everyone" names every
# active person and has no entries.
_PERSON_VALUES: dict[str, Callable[[int | OuterRef], QuerySet]] = {
    Campaign.Cohort.DEPARTMENTS: lambda person: (
        User.objects.filter(pk=person).exclude(department="").values(value=F("department"))
    ),
    Campaign.Cohort.LIST: lambda person: User.objects.filter(pk=person).values(value=F("username")),
    Campaign.Cohort.GROUPS: lambda person: Group.objects.filter(user=person).values(value=F("name")),
}


def _active() -> QuerySet:
    # Only active people are in a cohort: a leaver is in none, whatever their department or groups say.
    return User.objects.filter(is_active=True)


def campaigns_of(person: User, *, now: datetime | None = None) -> QuerySet:
    """The campaigns that apply to ``person`` now (started, not closed, and their cohort rule names the person), read
    by rule, not from ``Member``: a person who joined the cohort since the last refresh is in. One query. The rule is
    :func:`cohort_people`'s, read the other way."""
    now = now or timezone.now()
    entries = CohortEntry.objects.filter(campaign=OuterRef("pk"))
    rule: Q | Combinable = Q(cohort=Campaign.Cohort.EVERYONE)
    for cohort, values in _PERSON_VALUES.items():
        rule |= Q(cohort=cohort) & Exists(entries.filter(value__in=values(person.pk)))
    active = Exists(_active().filter(pk=person.pk))
    return Campaign.objects.filter(active, rule, starts_at__lte=now, closed_at=None)


def effective_policy(person: User, *, now: datetime | None = None) -> PersonPolicy | None:
    """The policy for ``person`` if they have not enrolled yet, across every campaign that applies to them now.

    Stable contract (the doors and the reminders rely on it):

    - returns None when no campaign applies (none started, all closed, or the person is in no cohort): the doors
      then do what they do for anyone without a device (require enrollment);
    - otherwise a :class:`PersonPolicy`: the strictest policy wins, and the deadline is the one that blocks the
      person or will (:func:`_deciding_campaign`). Each campaign's policy now is its policy before the deadline until
      the deadline (or for good when it has none), its policy after the deadline from then on; enrollment required
      by any campaign beats the password alone allowed by another.
    - cohort membership is read by rule at call time (:func:`campaigns_of`), so a person who joined a cohort
      after the campaign began is covered.

    It does not look at the person's devices: the caller asks only once it knows the person has none it can use.
    Reads the database (one query); changes nothing, audits nothing. ``now`` defaults to the current time.
    """
    now = now or timezone.now()
    found = sorted(campaigns_of(person, now=now), key=_deadline_order)
    if not found:
        return None
    decider, password_alone = _deciding_campaign(found, now)
    return PersonPolicy(
        campaign_id=decider.pk,
        campaign_name=decider.name,
        deadline=decider.deadline,
        password_alone=password_alone,
        now=now,
        time_zone=decider.time_zone,
    )


def password_alone_allowed(person: User, policy: PersonPolicy) -> bool:
    """Whether ``person``, who has not enrolled, may go on with the password alone now: the one rule the web
    sign-in and both VPN doors follow. True when their campaigns (``policy``, from :func:`effective_policy`)
    allow it now, and the person's setup is not on hold after their last device was reported lost (BND-02:
    whoever holds that password, perhaps with the lost phone, must not get in with it; the help desk's audited
    unlock lifts the hold). Reads nothing; the caller has checked that the person has not enrolled.
    """
    return policy.password_alone and not person.setup_on_hold


def audit_password_alone(person: User, policy: PersonPolicy, *, door: str, ip: str | None, context: dict) -> None:
    """Audit one connection let in without a second factor (``vpn.password_alone_allowed``), naming the campaign
    that allowed it, so an auditor can list them. ``door`` is ``auth_api`` or ``radius``; ``context`` the door's
    own details (integration, RADIUS client)."""
    details = {
        **context,
        "door": door,
        "campaign": policy.campaign_id,
        "campaign_name": policy.campaign_name,
        "deadline": policy.deadline.isoformat() if policy.deadline else None,
    }
    audit.record("vpn.password_alone_allowed", subject=person, ip=ip, details=details)


# --- A campaign's life ----------------------------------------------------------------------------------------

# The fields staff set; every change to one is named in the audit event.
EDITABLE = (
    "name",
    "cohort",
    "starts_at",
    "deadline",
    "reminder_days",
    "time_zone",
    "quiet_from",
    "quiet_until",
    "email_subject",
    "email_text",
    "sms_text",
    "policy_before_deadline",
    "policy_after_deadline",
    "owner",
)
MAX_REMINDER_DAYS = 365
_ID_SEPARATORS = re.compile(r"[\s,;]+")


def parse_cohort_values(text: str) -> list[str]:
    """The values of a pasted or uploaded list: one per line (or separated by commas, semicolons, spaces when the
    cohort is a list of institution IDs: callers split departments and groups by line only). Blank ones dropped,
    duplicates once, order kept."""
    return list(dict.fromkeys(value.strip() for value in text.splitlines() if value.strip()))


def parse_institution_ids(text: str) -> list[str]:
    """Institution IDs from a pasted list or an uploaded file (a CSV's first column works too): any mix of lines,
    commas, semicolons and spaces; blank ones dropped, duplicates once. A header cell of letters only is kept (it
    might be an ID); staff see the count before saving."""
    return list(dict.fromkeys(value for value in _ID_SEPARATORS.split(text) if value))


def check_campaign(fields: dict, cohort_values: list[str]) -> None:
    """Check a campaign's fields (every name in ``EDITABLE``) and cohort values together; raise ``ValidationError``
    (per field) with what to fix. The create and change services call it; a form may call it first."""
    problems: dict[str, str] = {}
    if not str(fields.get("name") or "").strip():
        problems["name"] = "Give the campaign a name."
    if fields["deadline"] is not None and fields["deadline"] <= fields["starts_at"]:
        problems["deadline"] = "The deadline must come after the start."
    days = fields["reminder_days"]
    if not isinstance(days, list) or not all(isinstance(d, int) and 0 < d <= MAX_REMINDER_DAYS for d in days):
        problems["reminder_days"] = f"Reminder days are whole numbers from 1 to {MAX_REMINDER_DAYS}."
    elif len(set(days)) != len(days):
        problems["reminder_days"] = "Each reminder day once."
    elif days and fields["deadline"] is None:
        problems["reminder_days"] = "Reminders count down to a deadline: set one, or leave the reminder days empty."
    try:
        zoneinfo.ZoneInfo(fields["time_zone"])
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        problems["time_zone"] = "Name a time zone such as Europe/Berlin."
    if fields["quiet_from"] == fields["quiet_until"]:
        problems["quiet_until"] = "Quiet hours need a start and an end that differ."
    if not str(fields.get("email_subject") or "").strip() or not str(fields.get("email_text") or "").strip():
        problems["email_text"] = "Write the email: its subject and its text."
    if fields["cohort"] != Campaign.Cohort.EVERYONE and not cohort_values:
        problems["cohort"] = "Name who is in the cohort: groups, departments or institution IDs."
    if fields["cohort"] == Campaign.Cohort.EVERYONE and cohort_values:
        problems["cohort"] = "A campaign for everyone names no groups, departments or IDs."
    limit = CohortEntry._meta.get_field("value").max_length or 0
    if any(len(value) > limit for value in cohort_values):
        problems["cohort"] = "A group, department or ID is longer than 255 characters."
    if problems:
        raise ValidationError(problems)


def _audit_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, User):
        return value.username
    return value if isinstance(value, int | list | type(None)) else str(value)


def _cohort_change(before: list[str], after: list[str]) -> dict:
    added, removed = set(after) - set(before), set(before) - set(after)
    return {"cohort_added": len(added), "cohort_removed": len(removed)} if added or removed else {}


def create_campaign(
    *, actor: User, ip: str | None = None, cohort_values: Sequence[str] = (), **fields: object
) -> Campaign:
    """Create a campaign from ``fields`` (the names in ``EDITABLE``, the model's defaults for the rest) with its
    cohort's values; audits ``campaigns.created`` with the settings (and how many cohort values, not the values).

    Raises ``ValidationError`` (per field) for what does not fit together. The caller must have checked that
    ``actor`` holds ``campaigns.run_campaigns``. The cohort's rows are not written here: the caller dispatches
    :func:`campaigns.tasks.refresh_soon` (beat refreshes every open campaign too).
    """
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise TypeError(f"not campaign fields: {', '.join(sorted(unknown))}")
    campaign = Campaign(**fields)
    values = list(dict.fromkeys(cohort_values))
    check_campaign({name: getattr(campaign, name) for name in EDITABLE}, values)
    with transaction.atomic():
        campaign.save()
        CohortEntry.objects.bulk_create(CohortEntry(campaign=campaign, value=value) for value in values)
        details = {name: _audit_value(getattr(campaign, name)) for name in EDITABLE if name not in _TEXTS}
        audit.record(
            "campaigns.created",
            actor=actor,
            ip=ip,
            details={"campaign": campaign.pk, **details, "cohort_values": len(values)},
        )
    return campaign


# Texts are long: the audit names that they changed, not their words (the campaign keeps them).
_TEXTS = {"email_subject", "email_text", "sms_text"}


def change_campaign(
    campaign: Campaign,
    *,
    actor: User,
    ip: str | None = None,
    cohort_values: Sequence[str] | None = None,
    **fields: object,
) -> Campaign:
    """Change the named ``fields`` of ``campaign`` (and its cohort's values, when given); audits
    ``campaigns.changed`` naming each changed field with its old and new value (texts: only that they changed) and
    how many cohort values came and went. Nothing changed: nothing written, no event.

    Raises ``ValidationError`` (per field) for a result that does not fit together, or for a closed campaign. The
    caller must have checked that ``actor`` holds ``campaigns.run_campaigns``.
    """
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise TypeError(f"not campaign fields: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        row = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if row.closed_at is not None:
            raise ValidationError("This campaign is closed: start a new one instead.")
        before_values = list(row.cohort_entries.order_by("pk").values_list("value", flat=True))
        values = before_values if cohort_values is None else list(dict.fromkeys(cohort_values))
        after = {name: fields.get(name, getattr(row, name)) for name in EDITABLE}
        check_campaign(after, values)
        changed = {name: value for name, value in after.items() if value != getattr(row, name)}
        cohort = _cohort_change(before_values, values)
        if not changed and not cohort:
            return row
        details = {
            name: "changed" if name in _TEXTS else [_audit_value(getattr(row, name)), _audit_value(value)]
            for name, value in changed.items()
        }
        for name, value in changed.items():
            setattr(row, name, value)
        row.save()
        if cohort:
            row.cohort_entries.exclude(value__in=values).delete()
            CohortEntry.objects.bulk_create(
                (CohortEntry(campaign=row, value=value) for value in values), ignore_conflicts=True
            )
        audit.record("campaigns.changed", actor=actor, ip=ip, details={"campaign": row.pk, **details, **cohort})
    return row


def close_campaign(campaign: Campaign, *, actor: User, ip: str | None = None) -> Campaign:
    """Close ``campaign``: from now on it applies to no one (no policy, no reminders); its rows stay for the audit
    and the progress page. Audits ``campaigns.closed``. Closing a closed campaign changes nothing.

    The caller must have checked that ``actor`` holds ``campaigns.run_campaigns``.
    """
    with transaction.atomic():
        row = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if row.closed_at is None:
            row.closed_at = timezone.now()
            row.save(update_fields=["closed_at", "updated_at"])
            audit.record("campaigns.closed", actor=actor, ip=ip, details={"campaign": row.pk, "name": row.name})
    return row


# --- The cohort as rows -------------------------------------------------------------------------------------


def cohort_people(campaign: Campaign) -> QuerySet:
    """The active people the campaign's cohort rule names now (whatever ``Member`` says): the rule of
    :func:`campaigns_of`, read per campaign."""
    people = _active()
    if campaign.cohort == Campaign.Cohort.EVERYONE:
        return people
    if campaign.cohort not in _PERSON_VALUES:
        raise ValueError(f"unknown cohort {campaign.cohort!r}")
    entries = CohortEntry.objects.filter(campaign=campaign).values("value")
    return people.filter(Exists(_PERSON_VALUES[campaign.cohort](OuterRef("pk")).filter(value__in=entries)))


REFRESH_BATCH = 5_000
_MEMBER_FIELDS = ("campaign_id", "person_id", "added_at")


def _insert_members(campaign: Campaign, person_ids: list[int], now: datetime) -> int:
    """Insert the people's member rows, leaving any already there (another refresh's); return how many went in.

    ``bulk_create(ignore_conflicts=True)`` returns every row it was given, inserted or not: the count here is the
    database's own (``INSERT ... ON CONFLICT DO NOTHING``'s row count, on PostgreSQL and SQLite alike).
    """
    added_at = connection.ops.adapt_datetimefield_value(now)
    table = connection.ops.quote_name(Member._meta.db_table)
    columns = ", ".join(_MEMBER_FIELDS)
    fields = [Member._meta.get_field(name.removesuffix("_id")) for name in _MEMBER_FIELDS]
    inserted = 0
    size = connection.ops.bulk_batch_size(fields, person_ids) or len(person_ids)
    with connection.cursor() as cursor:
        for start in range(0, len(person_ids), size):
            chunk = person_ids[start : start + size]
            rows = ", ".join(["(%s, %s, %s)"] * len(chunk))
            # Table and column names are the model's; the values are parameters.
            cursor.execute(
                f"INSERT INTO {table} ({columns}) VALUES {rows} ON CONFLICT (campaign_id, person_id) DO NOTHING",  # noqa: S608
                [value for person_id in chunk for value in (campaign.pk, person_id, added_at)],
            )
            inserted += cursor.rowcount
    return inserted


def refresh_members(campaign: Campaign, *, now: datetime | None = None) -> dict[str, int]:
    """Make ``Member`` say what the cohort rule says: add the people it names now, mark as left (``left_at``) those it
    no longer names (a mover, a leaver, a value taken out), and take back in those who left and are named again. A
    person keeps their row, and with it when they last had a message, whether they stay, leave or come back: one who
    comes back is not welcomed again.

    Runs in batches of ``REFRESH_BATCH`` ids read by a server-side cursor, each batch inserted with ``ON CONFLICT DO
    NOTHING``: no lock on the people table, never the whole cohort in memory, and two refreshes at once add each
    person once. A closed campaign is left as it is. Audits nothing (the cohort's change was audited); returns
    ``{"added": n, "returned": n, "left": n}``. Safe to run again.
    """
    now = now or timezone.now()
    campaign = Campaign.objects.get(pk=campaign.pk)
    if campaign.closed_at is not None:
        return {"added": 0, "returned": 0, "left": 0}
    people = cohort_people(campaign)
    added = 0
    batch: list[int] = []
    missing = people.exclude(Exists(Member.objects.filter(campaign=campaign, person=OuterRef("pk"))))
    for person_id in missing.values_list("pk", flat=True).iterator(chunk_size=REFRESH_BATCH):
        batch.append(person_id)
        if len(batch) == REFRESH_BATCH:
            added += _insert_members(campaign, batch, now)
            batch = []
    if batch:
        added += _insert_members(campaign, batch, now)
    rows = Member.objects.filter(campaign=campaign)
    named = people.values("pk")
    returned = rows.filter(left_at__isnull=False, person__in=named).update(left_at=None)
    left = rows.filter(left_at__isnull=True).exclude(person__in=named).update(left_at=now)
    return {"added": added, "returned": returned, "left": left}
