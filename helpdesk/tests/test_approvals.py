"""Four-eyes requests (BND-08) and the identity check an approved action runs on (BND-07); approved bypass codes
reach the agent on the phone, once, never the approver (BND-10)."""

import logging
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from freezegun import freeze_time

from devices.bypass_codes import current_bypass_codes
from devices.models import BypassCode, OutboundMessage
from helpdesk import approvals, errors, runner
from helpdesk.models import ApprovalRequest
from identity.models import AuditEvent
from identity.services import SecondFactorOutcome, verify_second_factor

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

BYPASS = {"count": 2, "valid_minutes": 15}


def events(action, **filters):
    return list(AuditEvent.objects.filter(action=action, **filters).order_by("sequence"))


def request_url(request):
    return reverse("admin:helpdesk_approvalrequest_change", args=[request.pk])


def file_request(action, person, agent, check, params):
    outcome = runner.perform(action, person, actor=agent, identity_check=check, params=params)
    assert outcome.request is not None
    return outcome.request


# --- The admin pages: the approver approves, the requester finishes and reads the codes out ------------------------


def test_bnd08_bnd10_approved_bypass_codes_reach_the_requester_once_never_the_approver(
    desk_client, staff_member, second_agent, superuser, check_for, sign_in, caplog
):
    caplog.set_level(logging.DEBUG)
    filing_check = check_for(superuser, staff_member)
    desk_client.post(
        reverse("admin:helpdesk_action", args=[superuser.pk, "issue_bypass_codes"]),
        {"count": "2", "valid_minutes": "15", "case": ""},
    )
    [request] = ApprovalRequest.objects.all()
    finish_url = reverse("admin:helpdesk_request_finish", args=[request.pk])
    approver = Client()
    sign_in(approver, second_agent)

    with freeze_time(timezone.now() + timedelta(hours=2)):
        page = approver.get(request_url(request))
        assert b"Approving does not run this now" in page.content
        approved = approver.post(
            reverse("admin:helpdesk_request_decide", args=[request.pk]), {"decision": "approve"}, follow=True
        )
        assert approved.status_code == 200 and b"bypass-codes" not in approved.content
        request.refresh_from_db()
        assert (request.status, request.decided_by) == (ApprovalRequest.Status.READY, second_agent)
        assert not superuser.bypasscodedevice_set.exists()
        refused = approver.post(finish_url, follow=True)  # the approver is not on the phone
        assert errors.ONLY_REQUESTER_FINISHES in refused.content.decode()
        assert not superuser.bypasscodedevice_set.exists()

        # The person page sends the requester to the request. Their check from two hours ago no longer counts:
        # they check again and come back to it.
        person_page = desk_client.get(reverse("admin:identity_user_change", args=[superuser.pk])).content.decode()
        assert "for you to finish with the caller" in person_page and request_url(request) in person_page
        page = desk_client.get(request_url(request)).content.decode()
        assert finish_url not in page
        check_url = f"{reverse('admin:helpdesk_identity_check', args=[superuser.pk])}?approval={request.pk}"
        assert check_url in page
        response = desk_client.post(check_url, {"method": "video_call_with_photo_id", "reference": "INC-88"})
        assert response["Location"] == request_url(request)
        assert finish_url in desk_client.get(request_url(request)).content.decode()

        shown = desk_client.post(finish_url)
        assert shown.status_code == 200 and "no-store" in shown["Cache-Control"]
        codes = shown.context["codes"]
        assert len(codes) == 2 and all(code in shown.content.decode() for code in codes)
        again = desk_client.post(finish_url, follow=True).content.decode()
        assert errors.NOT_READY in again and not any(code in again for code in codes)
        device = current_bypass_codes(superuser)
        assert verify_second_factor(superuser, device=device, code=codes[0], ip=None) == SecondFactorOutcome.OK

    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.APPROVED
    [new_check] = superuser.identity_checks.exclude(pk=filing_check.pk)
    [desk] = events("helpdesk.action", subject=superuser)
    assert desk.actor == staff_member and desk.details["check"] == new_check.pk
    assert (desk.details["filed_check"], desk.details["approved_by"]) == (filing_check.pk, second_agent.pk)
    [issued] = events("bypass_codes.issued", subject=superuser)
    assert issued.actor == staff_member
    # Never in the clear anywhere but that one page: not stored, audited, kept on the request, sent or logged.
    kept = [str(e.details) for e in AuditEvent.objects.all()]
    kept += [request.outcome, str(request.params), caplog.text]
    kept += list(BypassCode.objects.values_list("code_hash", flat=True))
    kept += [str(row) for row in OutboundMessage.objects.filter(user=superuser).values()]
    assert not [code for code in codes if any(code in text for text in kept)]


# --- The rule: read out to the caller needs a current check; the person's own channel runs at approval -------------


def test_bnd07_bypass_codes_never_run_on_a_stale_check(staff_member, second_agent, superuser, check_for):
    filing_check = check_for(superuser, staff_member)
    request = file_request("issue_bypass_codes", superuser, staff_member, filing_check, BYPASS)

    with freeze_time(timezone.now() + timedelta(minutes=45)):
        outcome = approvals.approve_request(request, actor=second_agent)
        assert outcome.codes == [] and outcome.request.status == ApprovalRequest.Status.READY
        [approved] = events("helpdesk.request_approved", subject=superuser)
        assert approved.details["check"] == filing_check.pk and approved.details["check_age_minutes"] == 45
        assert approved.details["runs"] != "now"
        with pytest.raises(ValidationError) as refused:
            approvals.finish_request(request, actor=staff_member, identity_check=filing_check)
        assert refused.value.code == "no_check"
        with pytest.raises(ValidationError) as refused:  # nor straight at the runner
            runner.run_action(
                "issue_bypass_codes",
                superuser,
                actor=staff_member,
                identity_check=filing_check,
                case=None,
                params=BYPASS,
                ip=None,
            )
        assert refused.value.messages == [errors.CALLER_CHECK_STALE.format(minutes=30)]
        assert not superuser.bypasscodedevice_set.exists() and not events("helpdesk.action")

        outcome = approvals.finish_request(
            request, actor=staff_member, identity_check=check_for(superuser, staff_member, reference="INC-2")
        )

    assert len(outcome.codes) == 2
    [desk] = events("helpdesk.action", subject=superuser)
    assert desk.details["reference"] == "INC-2" and desk.details["filed_check"] == filing_check.pk


@pytest.mark.parametrize(
    "action,params,effect",
    [
        ("sign_out_everywhere", {"reason": "phone stolen"}, "sessions.ended"),
        ("send_recovery_link", {}, "recovery.link_sent"),
        ("approve_vpn", {"reason": "manager asked"}, "vpn_access.approved"),
    ],
)
def test_bnd07_bnd08_own_channel_actions_run_at_approval_on_the_filing_check(
    staff_member, second_agent, superuser, check_for, action, params, effect
):
    filing_check = check_for(second_agent, staff_member)
    request = file_request(action, second_agent, staff_member, filing_check, params)

    with freeze_time(timezone.now() + timedelta(hours=5)):
        outcome = approvals.approve_request(request, actor=superuser)

    assert outcome.request is None and outcome.codes == []
    request.refresh_from_db()
    assert (request.status, request.decided_by) == (ApprovalRequest.Status.APPROVED, superuser)
    [approved] = events("helpdesk.request_approved", subject=second_agent)
    assert (approved.details["runs"], approved.details["check_age_minutes"]) == ("now", 300)
    [desk] = events("helpdesk.action", subject=second_agent)
    assert desk.actor == superuser and desk.details["check"] == filing_check.pk
    assert desk.details["requested_by"] == staff_member.pk
    assert events(effect, subject=second_agent)


# --- Who finishes, how often, until when; a refusal is kept ---------------------------------------------------------


def test_bnd08_a_ready_request_is_finished_by_its_requester_once_within_its_day(
    staff_member, second_agent, superuser, check_for
):
    filing_check = check_for(superuser, staff_member)
    request = file_request("issue_bypass_codes", superuser, staff_member, filing_check, BYPASS)
    approvals.approve_request(request, actor=second_agent)

    with pytest.raises(ValidationError) as refused:
        approvals.finish_request(request, actor=second_agent, identity_check=check_for(superuser, second_agent))
    assert refused.value.messages == [errors.ONLY_REQUESTER_FINISHES]
    # Approved within the half hour, the requester's own check is still current: the caller is still on the line.
    assert len(approvals.finish_request(request, actor=staff_member, identity_check=filing_check).codes) == 2
    with pytest.raises(ValidationError) as refused:
        approvals.finish_request(request, actor=staff_member, identity_check=filing_check)
    assert refused.value.messages == [errors.NOT_READY]
    assert superuser.bypasscodedevice_set.count() == 1

    later = file_request("issue_bypass_codes", superuser, staff_member, filing_check, BYPASS)
    approvals.approve_request(later, actor=second_agent)
    with freeze_time(timezone.now() + timedelta(hours=25)):
        fresh_check = check_for(superuser, staff_member)
        with pytest.raises(ValidationError) as refused:
            approvals.finish_request(later, actor=staff_member, identity_check=fresh_check)
    assert refused.value.messages == [errors.NOT_READY]
    assert superuser.bypasscodedevice_set.count() == 1


def test_bnd08_an_approved_action_its_service_refuses_leaves_the_request_failed(
    staff_member, second_agent, superuser, check_for
):
    check = check_for(second_agent, staff_member)
    request = file_request("retire_device", second_agent, staff_member, check, {"registration": "0", "reason": "r"})

    with pytest.raises(ValidationError) as refused:
        approvals.approve_request(request, actor=superuser)

    assert refused.value.messages == [errors.NOT_THEIR_DEVICE]
    request.refresh_from_db()
    assert (request.status, request.decided_by, request.outcome) == (
        ApprovalRequest.Status.FAILED,
        superuser,
        errors.NOT_THEIR_DEVICE,
    )
    assert events("helpdesk.request_approved", subject=second_agent) and not events("helpdesk.action")
    with pytest.raises(ValidationError):
        approvals.approve_request(request, actor=superuser)


def test_bnd08_may_finish_is_the_rule_finish_request_refuses_by(staff_member, second_agent, superuser, check_for):
    """The admin offers "finish" exactly when the service would run it; an unknown action or a lost permission
    stops both."""
    check = check_for(superuser, staff_member)
    request = file_request("issue_bypass_codes", superuser, staff_member, check, BYPASS)
    assert not approvals.may_finish(request, staff_member)  # not approved yet
    approvals.approve_request(request, actor=second_agent)
    request.refresh_from_db()
    assert approvals.may_finish(request, staff_member) and not approvals.may_finish(request, second_agent)

    ApprovalRequest.objects.filter(pk=request.pk).update(action="no_longer_offered")
    request.refresh_from_db()
    assert not approvals.may_finish(request, staff_member)
    with pytest.raises(ValidationError) as refused:
        approvals.finish_request(request, actor=staff_member, identity_check=check)
    assert (refused.value.code, refused.value.messages) == ("not_permitted", [errors.MAY_NOT_RUN])

    ApprovalRequest.objects.filter(pk=request.pk).update(action="issue_bypass_codes")
    request.refresh_from_db()
    staff_member.groups.clear()  # moved off the desk between asking and finishing
    requester = type(staff_member).objects.get(pk=staff_member.pk)  # permissions are cached on the old object
    assert not approvals.may_finish(request, requester)
    with pytest.raises(ValidationError) as refused:
        approvals.finish_request(request, actor=requester, identity_check=check)
    assert (refused.value.code, refused.value.messages) == ("not_permitted", [errors.MAY_NOT_RUN])
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.READY and not superuser.bypasscodedevice_set.exists()


def test_bnd08_the_services_refuse_a_decider_without_the_permissions_and_nothing_changes(
    staff_member, second_agent, superuser, auditor, make_user, check_for
):
    """The rule of who decides is approvals' own: an agent without ``approve_request`` (an auditor), or with it but
    without the action's own permission, is refused by approve_request and decline_request when called directly,
    as the admin's may_decide says."""
    check = check_for(superuser, staff_member)
    request = file_request("sign_out_everywhere", superuser, staff_member, check, {"reason": "phone stolen"})
    approver_only = make_user("approver1", is_staff=True)
    approver_only.user_permissions.add(
        Permission.objects.get(content_type__app_label="helpdesk", codename="approve_request")
    )

    for decider in (auditor, approver_only):
        for decide in (approvals.approve_request, approvals.decline_request):
            with pytest.raises(ValidationError) as refused:
                decide(request, actor=decider)
            assert (refused.value.code, refused.value.messages) == ("may_not_decide", [errors.MAY_NOT_DECIDE])

    request.refresh_from_db()
    assert (request.status, request.decided_by, request.decided_at) == (ApprovalRequest.Status.WAITING, None, None)
    assert not events("helpdesk.request_approved") and not events("helpdesk.request_declined")
    assert not events("sessions.ended") and not events("helpdesk.action")
    assert not approvals.may_decide(request, auditor) and not approvals.may_decide(request, approver_only)
    assert approvals.may_decide(request, second_agent)


# --- An approval asks again whether the action still applies; a decision needs its button -------------------------


def test_bnd08_two_filed_vpn_approvals_run_once(desk_client, staff_member, second_agent, superuser, check_for, sign_in):
    """Two agents (or one, twice) filed "approve VPN access" for a staff colleague: approving the second, once the
    first has run, changes nothing, says so, and leaves it to be declined."""
    check = check_for(second_agent, staff_member)
    first = file_request("approve_vpn", second_agent, staff_member, check, {"reason": "manager asked"})
    again = file_request("approve_vpn", second_agent, staff_member, check, {"reason": "manager asked, again"})
    approver = Client()
    sign_in(approver, superuser)
    decide = "admin:helpdesk_request_decide"
    assert approver.post(reverse(decide, args=[first.pk]), {"decision": "approve"}).status_code == 302

    response = approver.post(reverse(decide, args=[again.pk]), {"decision": "approve"}, follow=True)

    assert errors.ACTION_DOES_NOT_APPLY in [str(m) for m in response.context["messages"]]
    again.refresh_from_db()
    assert again.status == ApprovalRequest.Status.WAITING and again.decided_by is None
    assert len(events("vpn_access.approved", subject=second_agent)) == 1
    assert len(events("helpdesk.request_approved", subject=second_agent)) == 1
    assert OutboundMessage.objects.filter(user=second_agent, template="notice:vpn_access.approved").count() == 1


def test_bnd08_a_decision_without_its_button_decides_nothing(staff_member, second_agent, superuser, check_for, sign_in):
    check = check_for(second_agent, staff_member)
    request = file_request("sign_out_everywhere", second_agent, staff_member, check, {"reason": "phone stolen"})
    approver = Client()
    sign_in(approver, superuser)
    decide = reverse("admin:helpdesk_request_decide", args=[request.pk])

    for posted in ({}, {"decision": ""}, {"decision": "Decline "}, {"decision": "maybe"}):
        response = approver.post(decide, posted, follow=True)
        assert response.redirect_chain == [(request_url(request), 302)]
        assert errors.DECISION_MISSING in [str(m) for m in response.context["messages"]]

    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.WAITING and request.decided_by is None
    assert not events("helpdesk.request_declined") and not events("helpdesk.request_approved")
    response = approver.post(decide, {"decision": "decline"})
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.DECLINED
