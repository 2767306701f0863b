"""State changes of the help desk: identity checks, who needs a second approver, the services only the desk has,
cases.

A desk action runs through :mod:`helpdesk.runner`, which sits above the table of actions (:mod:`helpdesk.actions`)
that calls the services here. Refusals raise ``ValidationError`` with a text from :mod:`helpdesk.errors`.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import formats, timezone
from django.utils.timesince import timesince

from devices import services as device_services
from devices.models import ActivationLink, Registration
from devices.services import notify_person, security_keys
from devices.services.directory import tell_email_changed
from devices.webauthn import SessionChallenge
from identity import audit, open_sessions
from identity.directory import people as directory_people
from identity.models import AuditEvent, User
from identity.selectors import recent_email_change, same_person, staff_accounts_of

from . import errors, selectors
from .models import ApprovalRequest, Case, CaseNote, IdentityCheck

# --- Identity checks (BND-07) -------------------------------------------------------------------------


def record_identity_check(
    person: User, *, actor: User, method: str, reference: str, case: Case | None = None, ip: str | None = None
) -> IdentityCheck:
    """Record how ``actor`` made sure they are talking to ``person``. Audits ``helpdesk.identity_checked``.

    Raises ``ValidationError`` for a method not on the fixed list, an empty reference, the agent's own account
    or a case of someone else.
    """
    reference = reference.strip()
    check = IdentityCheck(person=person, agent=actor, method=method, reference=reference, case=case)
    check.clean()
    if same_person(actor, person):
        raise ValidationError(errors.OWN_ACCOUNT, code="own_account")
    if case is not None and case.person_id != person.pk:
        raise ValidationError(errors.CASE_NOT_THEIRS, code="case")
    with transaction.atomic():
        check.save()
        audit.record(
            "helpdesk.identity_checked",
            actor=actor,
            subject=person,
            ip=ip,
            details={"check": check.pk, "method": method, "reference": reference, "case": case and case.pk},
        )
    return check


def current_identity_check(person: User, *, agent: User) -> IdentityCheck | None:
    """The newest check of ``person`` by ``agent`` still valid now (IDENTITY_CHECK_VALID_MINUTES), or None."""
    since = timezone.now() - timedelta(minutes=settings.IDENTITY_CHECK_VALID_MINUTES)
    return (
        IdentityCheck.objects.filter(person=person, agent=agent, created_at__gt=since)
        .select_related("case")
        .order_by("-created_at")
        .first()
    )


# --- Who needs a second approver (BND-08, AC-04) --------------------------------------------------------


def moment_words(moment: datetime) -> str:
    """A time as the desk reads it: "08:10 on 7 Dec 2026", in the server's time zone."""
    return formats.date_format(timezone.localtime(moment), "H:i \\o\\n j M Y")


def event_since(
    person: User, *, seen: int | None, actions: tuple[str, ...] = selectors.DESK_EVENTS
) -> AuditEvent | None:
    """The newest of ``person``'s ``actions`` events when it is newer than the audit event numbered ``seen`` (0: none
    yet): what a page shown after ``seen`` did not know of. None when there is none, or when ``seen`` is None (an
    approved request, a script). Takes no lock: only :func:`refuse_if_done_since` decides."""
    if seen is None:
        return None
    last = selectors.last_desk_event(person, actions=actions)
    return last if last is not None and last.sequence > seen else None


def who_did(event: AuditEvent, *, actor: User) -> str:
    """Who wrote ``event``, as a refusal shown to ``actor`` names them."""
    if event.actor_id == actor.pk:
        return "you"
    return selectors.person_words(event.actor) if event.actor is not None else "someone"


def refuse_if_done_since(
    person: User,
    *,
    actor: User,
    seen: int | None,
    words: Callable[[AuditEvent, str], str],
    code: str,
    actions: tuple[str, ...] = selectors.DESK_EVENTS,
) -> None:
    """The guard of a desk page sent again (a reload, a double click, another agent in between): lock ``person``'s
    row and raise ``ValidationError`` (``code``, the text ``words(event, who)``) when :func:`event_since` finds one
    of ``actions`` newer than ``seen``. Call it inside the transaction of what it guards: the lock makes a second
    post of the same form wait for the first to commit, then find its event. ``seen`` None: nothing to compare."""
    if seen is None:
        return
    User.objects.select_for_update().only("pk").get(pk=person.pk)
    last = event_since(person, seen=seen, actions=actions)
    if last is not None:
        raise ValidationError(words(last, who_did(last, actor=actor)), code=code)


STAFF_ACCOUNT_REASON = "This is a staff account. Actions on staff accounts need a second agent."


def second_approval_reasons(person: User, *, action: str) -> list[str]:
    """Every reason ``action`` on ``person`` needs a second agent, each in plain words, the first sentence saying
    what and the rest why; empty when none does.

    A staff account, or any account of the same person (AC-12) that is one (BND-08); for a recovery link, an
    email address changed in the last RECENT_EMAIL_CHANGE_HOURS, with when and from what (AC-04).
    """
    reasons = []
    staff = staff_accounts_of(person)
    if staff and staff[0].pk == person.pk:
        reasons.append(STAFF_ACCOUNT_REASON)
    elif staff:
        reasons.append(
            f"This person also has a staff account ({staff[0].username}, same email address or directory "
            "identity). Actions on staff need a second agent."
        )
    change = recent_email_change(person) if action == "send_recovery_link" else None
    if change is not None:
        ago = timesince(change.created_at)
        old, new = change.details.get("from") or "no address", change.details.get("to") or "no address"
        reasons.append(
            f"The email address was changed {ago} before this was asked (at {moment_words(change.created_at)}), from "
            f"{old} to {new}. The link goes to the new address, which could be an attacker's."
        )
    return reasons


# The desk action's permission (helpdesk.actions), which a second approver of a recovery link holds too.
RECOVERY_LINK_PERMISSION = "send_recovery_link"


def approver_refusal(approver: User, *, permission: str, requested_by: User, person: User) -> ValidationError | None:
    """Why ``approver`` may not be the second agent of an action needing ``permission`` (a codename of this app)
    asked by ``requested_by`` for ``person``, or None.

    The one four-eyes rule (BND-08), for a request decided in the queue (:mod:`helpdesk.approvals`) and for an
    approver named to a service (:func:`send_reactivation_link`): ``approver`` holds ``helpdesk.approve_request``
    and the action's own permission, and is neither the requester nor the person (under any account, AC-12).
    """
    if not approver.has_perm("helpdesk.approve_request") or not approver.has_perm(f"helpdesk.{permission}"):
        return ValidationError(errors.MAY_NOT_DECIDE, code="may_not_decide")
    if same_person(approver, requested_by) or same_person(approver, person):
        return ValidationError(errors.APPROVER_IS_PARTY, code="party")
    return None


def why_second_approver(person: User, *, action: str) -> str:
    """:func:`second_approval_reasons` as one text, a line each; empty when the action needs no second agent."""
    return "\n".join(second_approval_reasons(person, action=action))


# --- Running a desk action -------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a desk action did: a message for the agent, codes to read out once, or a request that waits."""

    message: str = ""
    codes: list[str] = field(default_factory=list)
    request: ApprovalRequest | None = None


def require_current_check(person: User, *, actor: User, identity_check: IdentityCheck | None) -> IdentityCheck:
    """``identity_check`` if it is current and ``actor``'s check of ``person``; else ``ValidationError``."""
    if identity_check is None or not identity_check.is_current:
        raise ValidationError(
            errors.NO_CURRENT_CHECK.format(minutes=settings.IDENTITY_CHECK_VALID_MINUTES), code="no_check"
        )
    if identity_check.person_id != person.pk or identity_check.agent_id != actor.pk:
        raise ValidationError(errors.CHECK_NOT_YOURS, code="check_not_yours")
    return identity_check


# --- Services only the desk has --------------------------------------------------------------------------


def send_reactivation_link(
    person: User,
    *,
    actor: User,
    identity_check: IdentityCheck,
    registration: Registration | None = None,
    approved_by: User | None = None,
    ip: str | None = None,
) -> ActivationLink:
    """Email a person with no working factor a single-use link to put a new app in place of the old one.

    Requires an identity check with a method from the list and a reference (BND-07), and ``actor`` on the staff;
    never on the actor's own account (BND-08). A link to a staff account, or to an email changed in the last
    RECENT_EMAIL_CHANGE_HOURS, needs ``approved_by``: a second agent who may approve it
    (:func:`approver_refusal`: the approve permission and this action's, neither ``actor`` nor the person; BND-08,
    AC-04). Then :func:`devices.services.send_recovery_link` sends it, auditing ``recovery.link_sent``
    with the check (and the approver), and raises its own refusals.
    """
    identity_check.clean()
    if actor is None or not actor.is_staff:
        raise ValidationError(errors.STAFF_ONLY_LINK, code="staff_only")
    if same_person(actor, person):
        raise ValidationError(errors.OWN_ACCOUNT, code="own_account")
    details: dict[str, object] = {"identity_check": identity_check.method, "reference": identity_check.reference}
    if approved_by is not None:
        # An approver named who may not approve is refused, needed or not: never a link sent as if approved.
        if approver_refusal(approved_by, permission=RECOVERY_LINK_PERMISSION, requested_by=actor, person=person):
            raise ValidationError(errors.NAMED_APPROVER_REFUSED, code="approver_refused")
        details["approved_by"] = approved_by.pk
    elif why_second_approver(person, action="send_recovery_link"):
        raise ValidationError(errors.RECOVERY_NEEDS_APPROVER, code="needs_approver")
    return device_services.send_recovery_link(person, actor=actor, registration=registration, details=details, ip=ip)


def register_security_key_at_desk(
    person: User,
    *,
    actor: User,
    response_json: str,
    challenge: SessionChallenge,
    label: str,
    ip: str | None = None,
    passkey: bool = False,
) -> Registration:
    """Register a key for ``person``, who is at the desk and touches it in ``actor``'s browser; with ``passkey``, a
    passkey on the person's own phone or computer, held to the same rules as one they register themselves (WA-01).

    :func:`devices.services.security_keys.register_security_key` with the staff member as the actor: the device
    keeps ``registered_by`` and the ``device.bound`` event names who registered it for whom. The caller must have
    recorded the person's identity check (BND-07). Refuses anyone not on the staff, and their own account (BND-08).
    """
    if not getattr(actor, "is_staff", False):
        raise ValidationError(errors.STAFF_ONLY_KEY, code="not_staff")
    if same_person(actor, person):
        raise ValidationError(errors.OWN_ACCOUNT, code="own_account")
    return security_keys.register_security_key(
        person, response_json=response_json, challenge=challenge, label=label, actor=actor, ip=ip, passkey=passkey
    )


def end_sessions(person: User, *, actor: User, reason: str, ip: str | None = None) -> int:
    """End every signed-in web session of ``person`` (in the session store, ``identity.open_sessions``).

    A sign-in half-way through still needs a second factor, so it opens nothing. Returns how many ended.
    Audits ``sessions.ended`` and emails the person (BND-03).
    """
    reason = reason.strip()
    if not reason:
        raise ValidationError(errors.REASON_REQUIRED, code="reason")
    with transaction.atomic():
        ended = open_sessions.end_sessions(person)
        audit.record("sessions.ended", actor=actor, subject=person, ip=ip, details={"count": ended, "reason": reason})
        notify_person(person, event="sessions.ended")
    return ended


PERSON_FIELDS = ("email", "first_name", "last_name", "department")


def editable_person_fields(person: User) -> tuple[str, ...]:
    """The details the desk may change for ``person``: none the directory owns of a person from the directory
    (``identity.directory.people.OWNED_FIELDS``). Empty: "Change details" is not offered."""
    if person.from_directory:
        return tuple(name for name in PERSON_FIELDS if name not in directory_people.OWNED_FIELDS)
    return PERSON_FIELDS


def change_person_details(
    person: User, *, actor: User, reason: str, ip: str | None = None, **values: str | None
) -> User:
    """Change a person's email, names or department (AC-04); only the fields given and different are written.
    Refused for a person from the directory, which owns these fields (``identity.directory.people``).

    Audits ``person.details_changed`` with the old and new values and, for a new email, ``person.email_changed``
    (recovery links to it then need a second agent for a day) with how many open links, all sent to the old
    address, it revoked. Emails the person: a changed email at both addresses (``tell_email_changed``, as the
    directory's change does, DIR-06), a changed name or department at their address. Raises
    ``ValidationError`` for an empty reason, a bad email, nothing changed or the actor's own record.
    """
    reason = reason.strip()
    if not reason:
        raise ValidationError(errors.REASON_REQUIRED, code="reason")
    if same_person(actor, person):
        raise ValidationError(errors.OWN_ACCOUNT, code="own_account")
    values = {name: value.strip() for name, value in values.items() if name in PERSON_FIELDS and value is not None}
    if set(values) - set(editable_person_fields(person)):
        raise ValidationError(errors.DETAILS_FROM_DIRECTORY, code="from_directory")
    if values.get("email"):
        try:
            validate_email(values["email"])
        except ValidationError:
            raise ValidationError(errors.EMAIL_INVALID, code="email") from None
    with transaction.atomic():
        person = User.objects.select_for_update().get(pk=person.pk)
        changed = {
            name: (getattr(person, name), value) for name, value in values.items() if getattr(person, name) != value
        }
        if not changed:
            raise ValidationError(errors.NOTHING_CHANGED, code="unchanged")
        for name, (_, new) in changed.items():
            setattr(person, name, new)
        person.save(update_fields=list(changed))
        audit.record(
            "person.details_changed",
            actor=actor,
            subject=person,
            ip=ip,
            details={
                "reason": reason,
                "changes": {name: {"from": old, "to": new} for name, (old, new) in changed.items()},
            },
        )
        if "email" in changed:
            old_email, new_email = changed["email"]
            # As after the directory's change (DIR-06): both addresses told, links mailed to the old one voided.
            told = tell_email_changed(person, old=old_email or "", new=new_email or "")
            audit.record(
                "person.email_changed",
                actor=actor,
                subject=person,
                ip=ip,
                details={"from": old_email, "to": new_email, **told},
            )
        if set(changed) - {"email"}:
            notify_person(person, event="person.details_changed")
    return person


# --- Support cases ------------------------------------------------------------------------------------


def _case_opened_words(last: AuditEvent, who: str) -> str:
    return errors.CASE_OPENED_SINCE.format(case=last.details.get("case"), when=moment_words(last.created_at), who=who)


def open_case(
    person: User, *, actor: User, category: str, note: str = "", ip: str | None = None, seen: int | None = None
) -> Case:
    """Open a case for ``person``, assigned to ``actor``. Audits ``helpdesk.case_opened``.

    ``seen``: the newest ``helpdesk.case_opened`` event of the person the "Open a case" page was shown after (0:
    none yet). Once a newer one exists (the same form sent again by a reload or a double click, or a colleague's
    case in between) nothing is opened and ``ValidationError`` (code ``opened_since``) says which case, when and by
    whom; decided under the person's row lock, so two posts at once open one case. None: compared with nothing.
    Never on ``actor``'s own account, under any account (BND-08, AC-12).
    """
    if same_person(actor, person):
        raise ValidationError(errors.OWN_ACCOUNT, code="own_account")
    if category not in Case.Category.values:
        raise ValidationError("Choose a category from the list.", code="category")
    with transaction.atomic():
        refuse_if_done_since(
            person, actor=actor, seen=seen, words=_case_opened_words, code="opened_since", actions=selectors.CASE_EVENTS
        )
        case = Case.objects.create(person=person, category=category, assignee=actor, opened_by=actor)
        if note.strip():
            CaseNote.objects.create(case=case, author=actor, text=note.strip())
        audit.record(
            "helpdesk.case_opened", actor=actor, subject=person, ip=ip, details={"case": case.pk, "category": category}
        )
    return case


def add_case_note(case: Case, *, actor: User, text: str, status: str | None = None, ip: str | None = None) -> CaseNote:
    """Append a note (never edited) and optionally move the case's status. Audits ``helpdesk.case_noted``.

    Never on a case of ``actor``'s own account, under any account (BND-08, AC-12).
    """
    if same_person(actor, case.person):
        raise ValidationError(errors.OWN_ACCOUNT, code="own_account")
    text = text.strip()
    if not text:
        raise ValidationError(errors.NOTE_EMPTY, code="note")
    if status is not None and status not in Case.Status.values:
        raise ValidationError("Choose a status from the list.", code="status")
    with transaction.atomic():
        case = Case.objects.select_for_update().get(pk=case.pk)
        note = CaseNote.objects.create(case=case, author=actor, text=text)
        previous = case.status
        case.status = status or case.status
        case.updated_at = timezone.now()
        if case.assignee_id is None:
            case.assignee = actor
        case.save(update_fields=["status", "updated_at", "assignee"])
        audit.record(
            "helpdesk.case_noted",
            actor=actor,
            subject=case.person,
            ip=ip,
            details={"case": case.pk, "note": note.pk, "status_from": previous, "status_to": case.status},
        )
    return note
