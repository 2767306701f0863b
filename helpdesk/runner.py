"""Running a desk action, or filing it for a second agent.

Every desk action goes through :func:`perform`: it refuses the agent's own account, needs a current identity
check of the person by the same agent (BND-07), turns an action on a staff account (or a recovery link to a
freshly changed email) into a request a second agent approves (BND-08, decided in :mod:`helpdesk.approvals`),
and otherwise runs the action's service with ``actor`` and writes one ``helpdesk.action`` audit event naming the
check and case it relied on (AC-06), in the action's transaction. An action page sends the newest desk event it was
shown after (``seen``); once a newer one exists (the same form posted again by a reload or a second tab, or another
agent's action in between) nothing runs and nothing is filed, and the refusal says what was done, when and by whom. A
refusal whose writes stand (``identity.audit.AuditedRefusal``: its audit event, the WebAuthn challenge a refused key
spent) commits them without a ``helpdesk.action`` event, so a refused key's challenge stays spent and the agent starts
again with a fresh one. Refusals raise ``ValidationError`` with a text from :mod:`helpdesk.errors`.

It sits above the table of actions (:mod:`helpdesk.actions`), whose entries call the services in
:mod:`helpdesk.services`; :mod:`helpdesk.approvals` runs an approved request through :func:`run_action`.
"""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from identity import audit, metrics
from identity.models import AuditEvent, User
from identity.selectors import same_person

from . import errors
from .actions import ACTIONS
from .models import ApprovalRequest, Case, IdentityCheck
from .services import (
    Outcome,
    event_since,
    moment_words,
    refuse_if_done_since,
    require_current_check,
    second_approval_reasons,
    who_did,
)


def acted_since(person: User, *, actor: User, seen: int | None) -> str:
    """What was done or filed for ``person`` after the audit event numbered ``seen`` (0: none yet), as the refusal
    of a page shown before it says it; empty when nothing was, or when ``seen`` is None (an approved request, a
    script). Only :func:`refuse_if_acted_since` decides: this read takes no lock."""
    last = event_since(person, seen=seen)
    return "" if last is None else _acted_words(last, who_did(last, actor=actor))


def _acted_words(last: AuditEvent, who: str) -> str:
    action = ACTIONS.get(last.details.get("action", ""))
    phrase = f"“{action.phrase}”" if action else "another desk action"
    filed = last.action == "helpdesk.approval_requested"
    what = f"{phrase} was asked of a second agent" if filed else f"{phrase} was done"
    text = errors.ACTED_SINCE.format(what=what, when=moment_words(last.created_at), who=who)
    return f"{text} {errors.CODES_SHOWN_ONCE}" if action is not None and action.needs_caller and not filed else text


def refuse_if_acted_since(person: User, *, actor: User, seen: int | None) -> None:
    """Lock ``person``'s row and raise ``ValidationError`` (code ``acted_since``, words from :func:`acted_since`)
    when a desk action was done or filed for them after the audit event numbered ``seen``. Call it inside the
    transaction of the action it guards: the lock makes a second post of the same form wait for the first to
    commit, then find its event."""
    refuse_if_done_since(person, actor=actor, seen=seen, words=_acted_words, code="acted_since")


def perform(
    action: str,
    person: User,
    *,
    actor: User,
    identity_check: IdentityCheck | None,
    params: dict,
    case: Case | None = None,
    ip: str | None = None,
    seen: int | None = None,
) -> Outcome:
    """Run desk ``action`` on ``person``, or file it for a second approver; see the module docstring.

    The caller must have checked that ``actor`` holds the action's permission and that the action applies to
    ``person`` now; ``params`` are the action form's cleaned, JSON-safe values. ``seen`` is the newest desk event
    the action's page was shown after (:func:`refuse_if_acted_since`). A filed request is decided in
    :mod:`helpdesk.approvals`.
    """

    if same_person(actor, person):
        raise ValidationError(errors.OWN_ACCOUNT, code="own_account")
    identity_check = require_current_check(person, actor=actor, identity_check=identity_check)
    if case is not None and case.person_id != person.pk:
        raise ValidationError(errors.CASE_NOT_THEIRS, code="case")
    reasons = second_approval_reasons(person, action=action)
    if reasons:
        why = "\n".join(reasons)
        with transaction.atomic():
            refuse_if_acted_since(person, actor=actor, seen=seen)
            request = ApprovalRequest.objects.create(
                action=action,
                person=person,
                requested_by=actor,
                identity_check=identity_check,
                case=case,
                params=params,
                why_approval=why,
                expires_at=timezone.now() + timedelta(hours=settings.APPROVAL_REQUEST_TTL_HOURS),
            )
            audit.record(
                "helpdesk.approval_requested",
                actor=actor,
                subject=person,
                ip=ip,
                details={"request": request.pk, "action": action, "why": why, "check": identity_check.pk},
            )
        metrics.count(metrics.HELPDESK_ACTIONS, action, "approval_requested")
        return Outcome(message=f"Filed for a second agent's approval: {' '.join(reasons)}", request=request)
    return run_action(
        action, person, actor=actor, identity_check=identity_check, case=case, params=params, ip=ip, seen=seen
    )


def run_action(
    action: str,
    person: User,
    *,
    actor: User,
    identity_check: IdentityCheck,
    case: Case | None,
    params: dict,
    ip: str | None,
    requested_by: User | None = None,
    details: dict | None = None,
    seen: int | None = None,
) -> Outcome:
    """Run desk ``action``'s service and write its ``helpdesk.action`` event (with ``details`` added), atomically.

    An action read out to the caller (``DeskAction.needs_caller``: bypass codes) refuses a check that is no
    longer current (``CALLER_CHECK_STALE``): whoever was checked may have hung up since. ``requested_by`` is
    the requester when a second agent's approval runs it; ``seen`` as for :func:`perform`. The caller applied every
    other rule (:func:`perform`,
    :mod:`helpdesk.approvals`).
    """
    desk_action = ACTIONS[action]
    if desk_action.needs_caller and not identity_check.is_current:
        minutes = settings.IDENTITY_CHECK_VALID_MINUTES
        raise ValidationError(errors.CALLER_CHECK_STALE.format(minutes=minutes), code="check_stale")
    refusal: audit.AuditedRefusal | None = None
    with transaction.atomic():
        refuse_if_acted_since(person, actor=actor, seen=seen)
        try:
            outcome = desk_action.run(
                person, actor=actor, identity_check=identity_check, ip=ip, requested_by=requested_by, **params
            )
        except audit.AuditedRefusal as refused:
            # Its event and what it spent (a key's challenge) commit: a rollback would un-spend the challenge and
            # let the same answer be replayed.
            refusal = refused
        else:
            event = {"action": action, "check": identity_check.pk, "method": identity_check.method}
            event["reference"] = identity_check.reference
            if case is not None:
                event["case"] = case.pk
            audit.record("helpdesk.action", actor=actor, subject=person, ip=ip, details={**event, **(details or {})})
    if refusal is not None:
        raise refusal
    metrics.count_on_commit(metrics.HELPDESK_ACTIONS, action, "done")
    return outcome
