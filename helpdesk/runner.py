"""Running a desk action, or filing it for a second agent.

Every desk action goes through :func:`perform`: it refuses the agent's own account, needs a current identity
check of the person by the same agent (BND-07), turns an action on a staff account (or a recovery link to a
freshly changed email) into a request a second agent approves (BND-08, decided in :mod:`helpdesk.approvals`),
and otherwise runs the action's service with ``actor`` and writes one ``helpdesk.action`` audit event naming the
check and case it relied on (AC-06), in the action's transaction. A refusal the service audited
(``identity.audit.AuditedRefusal``) rolls back with that transaction and is recorded again after it. Refusals raise ``ValidationError`` with a text
from :mod:`helpdesk.errors`.

It sits above the table of actions (:mod:`helpdesk.actions`), whose entries call the services in
:mod:`helpdesk.services`; :mod:`helpdesk.approvals` runs an approved request through :func:`run_action`.
"""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from identity import audit, metrics
from identity.models import User
from identity.selectors import same_person

from . import errors
from .actions import ACTIONS
from .models import ApprovalRequest, Case, IdentityCheck
from .services import Outcome, require_current_check, second_approval_reasons


def perform(
    action: str,
    person: User,
    *,
    actor: User,
    identity_check: IdentityCheck | None,
    params: dict,
    case: Case | None = None,
    ip: str | None = None,
) -> Outcome:
    """Run desk ``action`` on ``person``, or file it for a second approver; see the module docstring.

    The caller must have checked that ``actor`` holds the action's permission and that the action applies to
    ``person`` now; ``params`` are the action form's cleaned, JSON-safe values. A filed request is decided in
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
    return run_action(action, person, actor=actor, identity_check=identity_check, case=case, params=params, ip=ip)


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
) -> Outcome:
    """Run desk ``action``'s service and write its ``helpdesk.action`` event (with ``details`` added), atomically.

    An action read out to the caller (``DeskAction.needs_caller``: bypass codes) refuses a check that is no
    longer current (``CALLER_CHECK_STALE``): whoever was checked may have hung up since. ``requested_by`` is
    the requester when a second agent's approval runs it. The caller applied every other rule (:func:`perform`,
    :mod:`helpdesk.approvals`).
    """
    desk_action = ACTIONS[action]
    if desk_action.needs_caller and not identity_check.is_current:
        minutes = settings.IDENTITY_CHECK_VALID_MINUTES
        raise ValidationError(errors.CALLER_CHECK_STALE.format(minutes=minutes), code="check_stale")
    try:
        with transaction.atomic():
            outcome = desk_action.run(
                person, actor=actor, identity_check=identity_check, ip=ip, requested_by=requested_by, **params
            )
            event = {"action": action, "check": identity_check.pk, "method": identity_check.method}
            event["reference"] = identity_check.reference
            if case is not None:
                event["case"] = case.pk
            audit.record("helpdesk.action", actor=actor, subject=person, ip=ip, details={**event, **(details or {})})
    except audit.AuditedRefusal as refused:
        # The service's refusal event (a key refused at the desk) went with the rollback: the log keeps it.
        refused.record_again()
        raise
    metrics.count_on_commit(metrics.HELPDESK_ACTIONS, action, "done")
    return outcome
