"""Read-only queries of the help desk: the person page and finding a caller."""

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone
from phonenumber_field.phonenumber import PhoneNumber
from phonenumbers import NumberParseException

from devices.models import OutboundMessage, Registration, WorkingRegistration
from devices.selectors import registrations_for_user
from identity import events
from identity.models import AuditEvent, User

from .models import ApprovalRequest, Case

RECENT_EVENTS = 20
RECENT_MESSAGES = 10
# A desk action done, or filed for a second agent: what an action page names as seen (helpdesk.runner).
DESK_EVENTS = ("helpdesk.action", "helpdesk.approval_requested")
# A case opened: what the "Open a case" page names as seen (helpdesk.services.open_case).
CASE_EVENTS = ("helpdesk.case_opened",)


def as_e164(text: str) -> str:
    """``text`` as an E.164 number if it reads as one (any common format, national ones in PHONE_DEFAULT_REGION)."""
    if sum(ch.isdigit() for ch in text) < 7:
        return ""
    try:
        number = PhoneNumber.from_string(text.strip(), region=settings.PHONENUMBER_DEFAULT_REGION)
    except (NumberParseException, ValueError):
        return ""
    return number.as_e164 if number.is_valid() else ""


def person_overview(person: User) -> dict:
    """Everything the person page shows: a fixed number of queries, however many devices or events."""
    last_sign_in = (
        AuditEvent.objects.filter(subject=person, action="signin.second_factor_ok").order_by("-sequence").first()
    )
    registrations = list(registrations_for_user(person))
    return {
        "registrations": registrations,
        "events": list(
            AuditEvent.objects.filter(subject=person).select_related("actor").order_by("-sequence")[:RECENT_EVENTS]
        ),
        "outbound": list(OutboundMessage.objects.filter(user=person).order_by("-created_at")[:RECENT_MESSAGES]),
        "cases": list(Case.objects.filter(person=person).select_related("assignee").order_by("-created_at")[:10]),
        "requests": list(
            ApprovalRequest.objects.filter(
                person=person,
                status__in=(ApprovalRequest.Status.WAITING, ApprovalRequest.Status.READY),
                expires_at__gt=timezone.now(),
            ).select_related("requested_by", "decided_by")
        ),
        "last_sign_in": last_sign_in,
        # "the authenticator app", not the code word the event holds
        "last_sign_in_factor": events.value_words("factor", last_sign_in.details.get("factor") or "")
        if last_sign_in
        else "",
        # "Enrolled" by the project's one rule, the view devices_working_registration: its rows are the working devices.
        "working_devices": WorkingRegistration.objects.filter(user_id=person.pk).count(),
    }


def matching_people(queryset: QuerySet[User], term: str) -> tuple[QuerySet[User], bool]:
    """People matching a desk search: an exact institution ID alone if there is one, else names, email, phone.

    A phone number in any common format matches every number the person registered, now or in the past.
    Returns the queryset and whether it may hold duplicates (never: phone matches go through a subquery).
    """
    term = term.strip()
    if not term:
        return queryset, False
    exact = queryset.filter(username=term)
    if exact.exists():
        return exact, False
    e164 = as_e164(term)
    if e164:
        owners = Registration.objects.filter(phone_number=e164).values("user_id")
        return queryset.filter(pk__in=owners), False
    if "@" in term:
        return queryset.filter(email__iexact=term), False
    condition = Q(username__istartswith=term)
    words = term.split()
    if len(words) >= 2:
        condition |= Q(first_name__istartswith=words[0], last_name__istartswith=words[-1])
    condition |= Q(last_name__istartswith=term) | Q(first_name__istartswith=term) | Q(email__istartswith=term)
    return queryset.filter(condition), False


def whole_number(text: str) -> int | None:
    """``text`` (from a URL or a form) as a whole number, or None: digits 0-9 only, so "²", which ``isdigit()``
    accepts and ``int()`` refuses, is not one."""
    return int(text) if text.isascii() and text.isdigit() else None


def open_case_of(person: User, case_id: str) -> Case | None:
    """The person's case ``case_id`` (as typed in a URL) if it is still open, else None."""
    number = whole_number(case_id)
    if number is None:
        return None
    return Case.objects.filter(person=person, pk=number).exclude(status=Case.Status.CLOSED).first()


def last_desk_event(person: User, *, actions: tuple[str, ...] = DESK_EVENTS) -> AuditEvent | None:
    """The newest desk action done or filed for ``person`` (or, with ``actions``, the newest of those events): an
    action page is sent with its sequence number, and the runner refuses the page once a newer one exists (a
    reload, the same form twice, another agent)."""
    return (
        AuditEvent.objects.filter(subject=person, action__in=actions)
        .select_related("actor")
        .order_by("-sequence")
        .first()
    )


def person_words(person: User) -> str:
    """A person as the desk names them: their name and institution ID ("Nia Ward (ID nurse7)")."""
    name = person.get_full_name()
    return f"{name} (ID {person.username})" if name else person.username
