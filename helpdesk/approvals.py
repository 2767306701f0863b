"""Four-eyes requests (BND-08): a second agent approves or declines what :func:`helpdesk.runner.perform` filed.

When an approved action runs, and on which identity check (BND-07):

- An action that reaches the person on their own channel or changes only what they are told about by email (a
  recovery link to the address on record, unlock, sign out everywhere, a device removed or reported lost, VPN
  access, details) runs at approval, in the approver's name, on the requester's check. That check was current
  when the request was filed, and the approver is a second pair of eyes on that record, not a new caller.
- An action whose result is read out to the caller (bypass codes, ``DeskAction.needs_caller``) does not run at
  approval: the caller the requester checked may have hung up hours ago, and the approver is not on the phone.
  Approval marks the request ``READY``; the requester finishes it with the caller on the line and a check of
  their own that is current now, and is the only one who sees the codes, once.
- An action done at the desk with the person there (registering a security key, ``DeskAction.live``) cannot run at
  approval either: the key is touched in the requester's browser. Approval marks it ``READY``; the requester runs the
  ceremony with the person at the desk and a current check, and the key's answer is added to the approved
  parameters for that run only (:func:`finish_request`).

Both events say which it was: ``helpdesk.request_approved`` names the filing check, its age and what runs when;
the ``helpdesk.action`` that follows names the check the action ran on.
"""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from identity import audit
from identity.models import User

from . import errors, runner, services
from .actions import ACTIONS
from .models import ApprovalRequest, IdentityCheck

Outcome = services.Outcome


def _decide_refusal(request: ApprovalRequest, decider: User) -> ValidationError | None:
    """Why ``decider`` may not approve or decline ``request`` now, or None: the one rule of :func:`may_decide`,
    :func:`approve_request` and :func:`decline_request`: the four-eyes rule of
    :func:`helpdesk.services.approver_refusal`, which a service given an approver applies too, on an open request."""
    action = ACTIONS.get(request.action)
    if action is None:
        return ValidationError(errors.MAY_NOT_DECIDE, code="may_not_decide")
    refusal = services.approver_refusal(
        decider, permission=action.permission, requested_by=request.requested_by, person=request.person
    )
    if refusal is not None and refusal.code == "may_not_decide":
        return refusal
    if not request.is_open:
        return ValidationError(errors.REQUEST_CLOSED, code="closed")
    return refusal


def may_decide(request: ApprovalRequest, decider: User) -> bool:
    """Whether ``decider`` may approve or decline ``request`` now: it waits and is within its day, its action is
    known, ``decider`` holds ``helpdesk.approve_request`` and the action's permission, and is neither the requester
    nor the person it is for (under any account). :func:`approve_request` and :func:`decline_request` refuse by
    the same rule.
    """
    return _decide_refusal(request, decider) is None


def _check_decider(request: ApprovalRequest, decider: User) -> None:
    refusal = _decide_refusal(request, decider)
    if refusal is not None:
        raise refusal


def _locked(request: ApprovalRequest) -> ApprovalRequest:
    return (
        ApprovalRequest.objects.select_for_update(of=("self",))
        .select_related("person", "requested_by", "identity_check", "case")
        .get(pk=request.pk)
    )


def _run(
    request: ApprovalRequest, *, actor: User, check: IdentityCheck, ip: str | None, answer: dict | None = None, **run
) -> tuple:
    """Run the request's action in a savepoint; the request ends ``APPROVED`` or, if the action refuses, ``FAILED``.

    Returns the outcome and the refusal (or None), for the caller to raise once its transaction has kept the failed
    request and the audit events before it. ``answer`` (a live action's key answer) is added to the approved
    parameters for this run, never stored; ``run`` goes to :func:`helpdesk.runner.run_action`.
    """
    try:
        # run_action's transaction is a savepoint here; what it records after a refusal stays in ours.
        outcome = runner.run_action(
            request.action,
            request.person,
            actor=actor,
            identity_check=check,
            case=request.case,
            params={**request.params, **(answer or {})},
            ip=ip,
            **run,
        )
    except ValidationError as error:
        if answer:  # the key's answer was refused (a key registered before, a spent challenge): it may be tried
            # again, with a fresh challenge (the refused one stays spent, helpdesk.runner)
            return Outcome(message=" ".join(error.messages), request=request), error
        request.status, request.outcome = ApprovalRequest.Status.FAILED, " ".join(error.messages)[:300]
        request.save(update_fields=["status", "decided_by", "decided_at", "outcome"])
        return Outcome(message=request.outcome, request=request), error
    request.status, request.outcome = ApprovalRequest.Status.APPROVED, outcome.message[:300]
    request.save(update_fields=["status", "decided_by", "decided_at", "outcome"])
    return outcome, None


def approve_request(request: ApprovalRequest, *, actor: User, ip: str | None = None) -> Outcome:
    """A second agent (``actor``) approves a waiting request: see the module docstring for what runs when.

    An action that runs at approval runs with ``actor`` as its actor and the requester's identity check; if its
    own service refuses, the request is marked failed with that reason and the refusal raised. An action read out
    to the caller is only marked ``READY``, and the outcome holds no codes. Refuses the requester and the person it
    is for, a request decided or past its day, and an ``actor`` without ``helpdesk.approve_request`` and the
    action's permission (:func:`may_decide`, code ``may_not_decide``); and, changing nothing (code
    ``does_not_apply``: the request still waits, to be declined), an action that no longer applies to the person
    (``DeskAction.applies``, as the requester's page asks it). Audits ``helpdesk.request_approved`` and the
    action's own events.
    """
    with transaction.atomic():
        request = _locked(request)
        _check_decider(request, actor)
        action = ACTIONS[request.action]
        # Still to be done? Another request, or an agent, may have done it since it was filed (two requests to
        # approve VPN access). Read under the person's lock, which the action's own services wait for too.
        request.person = User.objects.select_for_update().get(pk=request.person_id)
        if not action.applies(request.person):
            raise ValidationError(errors.ACTION_DOES_NOT_APPLY, code="does_not_apply")
        check = request.identity_check
        later = action.finished_by_requester
        with_whom = "the person at the desk" if action.live else "the caller"
        audit.record(
            "helpdesk.request_approved",
            actor=actor,
            subject=request.person,
            ip=ip,
            details={
                "request": request.pk,
                "action": request.action,
                "requested_by": request.requested_by_id,
                "check": check.pk,
                "check_age_minutes": int((timezone.now() - check.created_at).total_seconds() // 60),
                "runs": f"when the requester finishes it with {with_whom}" if later else "now",
            },
        )
        request.decided_by, request.decided_at = actor, timezone.now()
        if later:
            request.status = ApprovalRequest.Status.READY
            request.outcome = (
                f"Approved. {request.requested_by} registers the key with the person at the desk and a current "
                "identity check."
                if action.live
                else f"Approved. {request.requested_by} finishes it with the caller on the line and a current identity "
                "check; only they see the result."
            )
            request.save(update_fields=["status", "decided_by", "decided_at", "outcome"])
            return Outcome(message=request.outcome, request=request)
        outcome, refusal = _run(
            request,
            actor=actor,
            check=check,
            ip=ip,
            requested_by=request.requested_by,
            details={"request": request.pk, "requested_by": request.requested_by_id},
        )
    if refusal is not None:
        raise refusal
    return outcome


def _finish_refusal(request: ApprovalRequest, agent: User) -> ValidationError | None:
    """Why ``agent`` may not finish ``request`` now, or None: the one rule of :func:`may_finish` and
    :func:`finish_request`."""
    if agent.pk != request.requested_by_id:
        return ValidationError(errors.ONLY_REQUESTER_FINISHES, code="not_requester")
    if not request.is_ready:
        return ValidationError(errors.NOT_READY, code="not_ready")
    action = ACTIONS.get(request.action)
    if action is None or not agent.has_perm(f"helpdesk.{action.permission}"):
        return ValidationError(errors.MAY_NOT_RUN, code="not_permitted")
    return None


def may_finish(request: ApprovalRequest, agent: User) -> bool:
    """Whether ``agent`` may finish ``request`` now: it is ``READY``, its action is known, ``agent`` asked for it
    and still holds the action's permission. :func:`finish_request` refuses by the same rule, and also asks for a
    current identity check, which the admin offers to record first.
    """
    return _finish_refusal(request, agent) is None


def ready_request(person: User, *, agent: User, action: str) -> ApprovalRequest | None:
    """The approved request of ``agent`` to run ``action`` on ``person`` that waits for them to finish it, or None."""
    found = (
        ApprovalRequest.objects.filter(
            person=person,
            requested_by=agent,
            action=action,
            status=ApprovalRequest.Status.READY,
            expires_at__gt=timezone.now(),
        )
        .order_by("-created_at")
        .first()
    )
    return found if found is not None and may_finish(found, agent) else None


def finish_request(
    request: ApprovalRequest,
    *,
    actor: User,
    identity_check: IdentityCheck | None,
    ip: str | None = None,
    answer: dict | None = None,
) -> Outcome:
    """The requester (``actor``) finishes an approved ``READY`` request, with the caller on the line; it runs now.

    Needs ``identity_check`` to be ``actor``'s check of the person, current now (BND-07): the filing check vouched
    for a call that may be over. Runs the action with the approved ``params`` in ``actor``'s name; its
    ``helpdesk.action`` event names this check, the filing check and the approver. The request then ends
    ``APPROVED`` (or ``FAILED`` with the action's refusal, raised), so it runs once and its codes are returned
    here only. Raises ``ValidationError`` for anyone but the requester, a request not ``READY`` or past its
    day, an ``actor`` who no longer holds the action's permission (:func:`may_finish`), or no current check. The
    caller must have checked that the action applies to the person now.

    A live action (a security key at the desk) needs ``answer``, the key's answer and its challenge from the
    requester's browser; without it nothing runs and the request stays ``READY`` (``KEY_AT_THE_DESK``).
    """
    with transaction.atomic():
        request = _locked(request)
        refusal = _finish_refusal(request, actor)
        if refusal is not None:
            raise refusal
        if ACTIONS[request.action].live and not answer:
            raise ValidationError(errors.KEY_AT_THE_DESK, code="at_the_desk")
        check = services.require_current_check(request.person, actor=actor, identity_check=identity_check)
        outcome, refusal = _run(
            request,
            actor=actor,
            check=check,
            ip=ip,
            answer=answer,
            details={
                "request": request.pk,
                "approved_by": request.decided_by_id,
                "filed_check": request.identity_check_id,
            },
        )
    if refusal is not None:
        raise refusal
    return outcome


def decline_request(request: ApprovalRequest, *, actor: User, ip: str | None = None) -> ApprovalRequest:
    """A second agent declines a waiting request. Audits ``helpdesk.request_declined``; refused by the rule of
    approval (:func:`may_decide`)."""
    with transaction.atomic():
        request = ApprovalRequest.objects.select_for_update().get(pk=request.pk)
        _check_decider(request, actor)
        request.status, request.decided_by, request.decided_at = (
            ApprovalRequest.Status.DECLINED,
            actor,
            timezone.now(),
        )
        request.save(update_fields=["status", "decided_by", "decided_at"])
        audit.record(
            "helpdesk.request_declined",
            actor=actor,
            subject=request.person,
            ip=ip,
            details={"request": request.pk, "action": request.action},
        )
    return request
