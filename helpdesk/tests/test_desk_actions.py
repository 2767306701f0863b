"""Desk actions from the person page: identity check first (BND-07), four-eyes (BND-08), audited (AC-06) and
notified (BND-03); no raw edits of people (AC-04); roles (AC-03)."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone
from freezegun import freeze_time

from devices.models import OutboundMessage, Registration
from helpdesk import approvals, runner, services
from helpdesk.models import ApprovalRequest
from identity.models import AuditEvent

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def action_url(person, action):
    return reverse("admin:helpdesk_action", args=[person.pk, action])


def person_url(person):
    return reverse("admin:identity_user_change", args=[person.pk])


def events(action, **filters):
    return list(AuditEvent.objects.filter(action=action, **filters).order_by("sequence"))


def notices(person, template):
    return OutboundMessage.objects.filter(user=person, template=template)


def lock(person):
    from identity.services import record_second_factor_failure

    for _ in range(10):
        record_second_factor_failure(person, factor="totp", ip=None)
    person.refresh_from_db()
    assert person.is_locked


# --- AC-03 / AC-04: roles and no raw edits ---------------------------------------------------------------------


def test_ac03_help_desk_has_desk_permissions_not_change_user():
    codenames = set(Group.objects.get(name="Help desk").permissions.values_list("codename", flat=True))
    assert "change_user" not in codenames
    assert {"issue_bypass_codes", "unlock_account", "record_identity_check", "approve_request"} <= codenames
    assert not [c for c in codenames if c.startswith(("add_", "change_", "delete_"))]


def test_ac03_auditor_holds_view_permissions_only():
    codenames = set(Group.objects.get(name="Auditor").permissions.values_list("codename", flat=True))
    assert "view_case" in codenames
    assert all(c.startswith("view_") for c in codenames), codenames


def test_ac04_person_page_has_no_editable_field_and_refuses_a_post(desk_client, caller):
    page = desk_client.get(person_url(caller))
    assert page.status_code == 200
    content = page.content.decode()
    assert 'name="email"' not in content and 'name="_save"' not in content

    response = desk_client.post(person_url(caller), {"username": caller.username, "email": "evil@example.com"})

    assert response.status_code == 403
    caller.refresh_from_db()
    assert caller.email == "caller1@example.edu"


def test_ac04_dir06_email_change_is_audited_and_tells_both_addresses(desk_client, caller, staff_member, check_for):
    """As the directory's change does (devices.services.directory.tell_email_changed): the old address and the new
    one are each told that the email address changed."""
    check_for(caller, staff_member)
    response = desk_client.post(
        action_url(caller, "change_details"),
        {
            "email": "cal.new@example.edu",
            "first_name": "Cal",
            "last_name": "Ler",
            "department": "Radiology",
            "reason": "INC-9 new address",
        },
    )

    assert response.status_code == 302
    caller.refresh_from_db()
    assert caller.email == "cal.new@example.edu"
    [changed] = events("person.details_changed", subject=caller)
    assert changed.actor == staff_member
    assert changed.details["changes"] == {"email": {"from": "caller1@example.edu", "to": "cal.new@example.edu"}}
    told = notices(caller, "notice:person.email_changed")
    assert sorted(told.values_list("recipient", flat=True)) == ["cal.new@example.edu", "caller1@example.edu"]
    [desk] = events("helpdesk.action", subject=caller)
    assert desk.details["action"] == "change_details"


def test_ac04_an_email_change_at_the_desk_ends_the_links_sent_to_the_old_address(
    desk_client, caller, staff_member, check_for, django_capture_on_commit_callbacks, mailoutbox
):
    """As after the directory's change (DIR-06): whoever reads the old mailbox cannot use a link sent there."""
    from devices.models import ActivationLink
    from devices.tests.helpers import LINK_RE
    from devices.tests.test_recovery_link import LANDING, assert_not_valid, open_link

    check_for(caller, staff_member)
    with django_capture_on_commit_callbacks(execute=True):
        sent = desk_client.post(action_url(caller, "send_recovery_link"), {"case": ""})
    assert sent.status_code == 302, sent.context["form"].errors
    [email] = [m for m in mailoutbox if "caller1@example.edu" in m.to and LINK_RE.search(m.body)]
    token = LINK_RE.search(email.body).group(2)
    details = {"first_name": "Cal", "last_name": "Ler", "department": "Radiology", "reason": "INC-9 new address"}

    response = desk_client.post(action_url(caller, "change_details"), {"email": "cal.new@example.edu", **details})

    assert response.status_code == 302
    assert not ActivationLink.objects.filter(user=caller, revoked_at=None, consumed_at=None).exists()
    [changed] = events("person.email_changed", subject=caller)
    assert (changed.details["from"], changed.details["links_revoked"]) == ("caller1@example.edu", 1)
    assert LANDING in email.body
    assert_not_valid(*open_link(token))


def test_ac04_bnd08_recovery_link_to_a_fresh_email_needs_a_second_agent(caller, staff_member, second_agent, check_for):
    services.change_person_details(caller, actor=staff_member, reason="INC-9", email="cal.new@example.edu")
    check = check_for(caller, staff_member)

    outcome = runner.perform("send_recovery_link", caller, actor=staff_member, identity_check=check, params={})

    assert outcome.request is not None
    assert not notices(caller, "recovery_link").exists()
    approvals.approve_request(outcome.request, actor=second_agent)
    assert notices(caller, "recovery_link").filter(recipient="cal.new@example.edu").count() == 1


# --- BND-07: an identity check first ---------------------------------------------------------------------------


def test_bnd07_action_page_asks_for_a_check_first_then_goes_on(desk_client, caller, staff_member):
    lock(caller)
    response = desk_client.get(action_url(caller, "unlock"))
    assert response.status_code == 302
    check_url = response["Location"]
    assert check_url.startswith(reverse("admin:helpdesk_identity_check", args=[caller.pk]))

    response = desk_client.post(check_url, {"method": "callback_to_number_on_file", "reference": "INC-77"})

    assert response["Location"] == action_url(caller, "unlock")
    assert desk_client.get(action_url(caller, "unlock")).status_code == 200
    response = desk_client.post(action_url(caller, "unlock"), {"reason": "called back, INC-77"})
    assert response.status_code == 302
    caller.refresh_from_db()
    assert not caller.is_locked
    [desk] = events("helpdesk.action", subject=caller)
    assert desk.actor == staff_member
    assert desk.details["method"] == "callback_to_number_on_file" and desk.details["reference"] == "INC-77"
    assert notices(caller, "notice:account.unlocked").exists()


def test_bnd07_knowledge_questions_are_not_a_method(desk_client, caller):
    url = reverse("admin:helpdesk_identity_check", args=[caller.pk])
    response = desk_client.post(url, {"method": "knowledge_questions", "reference": "INC-1"})
    assert response.status_code == 200
    assert not caller.identity_checks.exists()


def test_bnd07_a_check_expires_and_belongs_to_its_agent(caller, staff_member, second_agent, check_for):
    check = check_for(caller, staff_member)
    assert services.current_identity_check(caller, agent=second_agent) is None
    with pytest.raises(ValidationError):
        runner.perform("sign_out_everywhere", caller, actor=second_agent, identity_check=check, params={"reason": "x"})
    with freeze_time(timezone.now() + timedelta(minutes=31)):
        assert services.current_identity_check(caller, agent=staff_member) is None
        with pytest.raises(ValidationError):
            runner.perform(
                "sign_out_everywhere", caller, actor=staff_member, identity_check=check, params={"reason": "x"}
            )


@pytest.mark.parametrize(
    "action,params",
    [
        ("unlock", {"reason": "r"}),
        ("issue_bypass_codes", {"count": 2, "valid_minutes": 15}),
        ("send_recovery_link", {}),
        ("sign_out_everywhere", {"reason": "r"}),
        ("approve_vpn", {"reason": "r"}),
    ],
)
def test_bnd07_every_action_refuses_without_a_check(caller, staff_member, action, params):
    before = AuditEvent.objects.count()
    with pytest.raises(ValidationError):
        runner.perform(action, caller, actor=staff_member, identity_check=None, params=params)
    assert AuditEvent.objects.count() == before


# --- BND-08: own account, staff accounts --------------------------------------------------------------------


def test_bnd08_nobody_acts_on_their_own_account(desk_client, staff_member):
    assert services.current_identity_check(staff_member, agent=staff_member) is None
    with pytest.raises(ValidationError):
        services.record_identity_check(staff_member, actor=staff_member, method="photo_id_in_person", reference="x")
    response = desk_client.get(action_url(staff_member, "issue_bypass_codes"), follow=True)
    assert b"your own account" in response.content
    page = desk_client.get(person_url(staff_member))
    assert page.context["desk_actions"] == []


def test_bnd08_action_on_a_staff_account_waits_for_a_second_agent(
    desk_client, staff_member, second_agent, superuser, check_for
):
    check = check_for(superuser, staff_member)
    response = desk_client.post(
        action_url(superuser, "issue_bypass_codes"), {"count": "2", "valid_minutes": "15", "case": ""}
    )
    assert response.status_code == 302
    [request] = ApprovalRequest.objects.all()
    assert (request.person, request.requested_by, request.identity_check) == (superuser, staff_member, check)
    assert not superuser.bypasscodedevice_set.exists()

    with pytest.raises(ValidationError):
        approvals.approve_request(request, actor=staff_member)  # not the requester
    with pytest.raises(ValidationError):
        approvals.approve_request(request, actor=superuser)  # not the subject
    outcome = approvals.approve_request(request, actor=second_agent)

    # Codes are read out to the caller: the approver never sees them; the requester finishes it (test_approvals.py).
    assert outcome.codes == []
    request.refresh_from_db()
    assert (request.status, request.decided_by) == (ApprovalRequest.Status.READY, second_agent)
    assert not superuser.bypasscodedevice_set.exists()
    outcome = approvals.finish_request(request, actor=staff_member, identity_check=check)
    assert len(outcome.codes) == 2
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.APPROVED
    [desk] = events("helpdesk.action", subject=superuser)
    assert desk.actor == staff_member and desk.details["approved_by"] == second_agent.pk
    assert desk.details["check"] == check.pk


def test_bnd08_request_expires_after_a_day(staff_member, second_agent, superuser, check_for):
    check = check_for(superuser, staff_member)
    outcome = runner.perform(
        "sign_out_everywhere", superuser, actor=staff_member, identity_check=check, params={"reason": "r"}
    )
    with freeze_time(timezone.now() + timedelta(hours=25)), pytest.raises(ValidationError):
        approvals.approve_request(outcome.request, actor=second_agent)


def test_bnd08_recovery_link_to_a_staff_account_needs_a_second_agent(staff_member, second_agent, superuser, check_for):
    check = check_for(second_agent, staff_member)
    outcome = runner.perform("send_recovery_link", second_agent, actor=staff_member, identity_check=check, params={})
    assert outcome.request is not None
    assert not notices(second_agent, "recovery_link").exists()

    approvals.approve_request(outcome.request, actor=superuser)

    assert notices(second_agent, "recovery_link").count() == 1
    [sent] = events("recovery.link_sent", subject=second_agent)
    assert (sent.actor, sent.details["approved_by"]) == (staff_member, superuser.pk)


# --- Each action: runs, audits with its check and case, notifies (BND-03, AC-06) -------------------------------------


def test_ac06_bnd03_retire_and_report_lost_from_the_desk(desk_client, caller, staff_member, check_for, enroll):
    second = enroll(caller, kind="tablet", platform="android")
    case = services.open_case(caller, actor=staff_member, category="lost_device")
    check_for(caller, staff_member, case=case)

    response = desk_client.post(
        action_url(caller, "retire_device"), {"registration": str(second.pk), "reason": "old tablet", "case": case.pk}
    )
    assert response.status_code == 302, response.content[:500]
    second.refresh_from_db()
    assert second.status == Registration.Status.RETIRED and second.retired_by == staff_member

    phone = caller.registrations.get(kind="mobile")
    desk_client.post(action_url(caller, "report_lost"), {"registration": str(phone.pk), "case": case.pk})
    phone.refresh_from_db()
    assert phone.status == Registration.Status.RETIRED
    caller.refresh_from_db()
    assert caller.lost_last_factor_at is not None
    desk = events("helpdesk.action", subject=caller)
    assert [e.details["action"] for e in desk] == ["retire_device", "report_lost"]
    assert all(e.details["case"] == case.pk for e in desk)
    assert notices(caller, "notice:device.retired").exists() and notices(caller, "notice:device.reported_lost").exists()
    # The case page lists the actions taken in it.
    page = desk_client.get(reverse("admin:helpdesk_case_change", args=[case.pk]))
    assert page.status_code == 200 and "Help desk: report a device lost" in page.content.decode()


def test_bnd03_sign_out_everywhere_ends_the_persons_sessions(
    desk_client, caller, staff_member, check_for, sign_in, client_factory=None
):
    from django.test import Client

    theirs = Client()
    sign_in(theirs, caller)
    assert theirs.get("/devices/").status_code == 200
    check_for(caller, staff_member)

    desk_client.post(action_url(caller, "sign_out_everywhere"), {"reason": "phone stolen"})

    assert theirs.get("/devices/").status_code == 302
    assert desk_client.get("/admin/").status_code == 200  # the agent's own session stays
    [ended] = events("sessions.ended", subject=caller)
    assert ended.details["count"] == 1
    assert notices(caller, "notice:sessions.ended").exists()


def test_ac06_vpn_access_from_the_desk(desk_client, caller, staff_member, check_for):
    check_for(caller, staff_member)
    desk_client.post(action_url(caller, "approve_vpn"), {"reason": "manager asked, INC-4"})
    caller.refresh_from_db()
    assert caller.vpn_access == "approved" and caller.vpn_access_changed_by == staff_member
    assert notices(caller, "notice:vpn_access.approved").exists()
    desk_client.post(action_url(caller, "revoke_vpn"), {"reason": "left the project"})
    caller.refresh_from_db()
    assert caller.vpn_access == "revoked"


def test_ac04_no_vpn_access_for_a_deactivated_account(desk_client, caller, staff_member, check_for):
    """A leaver's VPN access was revoked when they left: the desk neither offers nor gives it back."""
    from identity import errors as identity_errors
    from identity import services as identity_services
    from identity.directory import people

    assert people.deactivate_person(caller, reason="left", origin={"by_command": True})
    check_for(caller, staff_member)

    page = desk_client.get(person_url(caller))
    assert "approve_vpn" not in [a.key for a in page.context["desk_actions"]]
    response = desk_client.post(action_url(caller, "approve_vpn"), {"reason": "manager asked"}, follow=True)
    assert b"does not apply" in response.content
    with pytest.raises(ValidationError) as refused:
        identity_services.approve_vpn_access(caller, actor=staff_member, reason="manager asked")
    assert refused.value.messages == [identity_errors.VPN_ACCOUNT_INACTIVE]
    caller.refresh_from_db()
    assert caller.vpn_access == "none"
    assert not events("vpn_access.approved")


def test_action_that_does_not_apply_is_not_offered(desk_client, caller):
    page = desk_client.get(person_url(caller))
    keys = [a.key for a in page.context["desk_actions"]]
    assert "unlock" not in keys and "revoke_vpn" not in keys
    assert "issue_bypass_codes" in keys
    response = desk_client.get(action_url(caller, "unlock"), follow=True)
    assert b"does not apply" in response.content


NOT_IDS = ["abc", "\u00b2", "1.5", "-1", "99999999999999999999"]


@pytest.mark.parametrize("not_an_id", NOT_IDS)
def test_desk_urls_answer_404_for_an_id_that_is_not_one(desk_client, not_an_id):
    """A mistyped or tampered id in a desk address is "not found", never a server error."""
    gets = [
        f"/admin/identity/user/{not_an_id}/desk/check/",
        f"/admin/identity/user/{not_an_id}/desk/case/",
        f"/admin/identity/user/{not_an_id}/desk/unlock/",
    ]
    posts = gets + [
        f"/admin/identity/user/{not_an_id}/desk/security-key-options/",
        f"/admin/identity/user/{not_an_id}/directory-sync/",
        f"/admin/helpdesk/case/{not_an_id}/note/",
        f"/admin/helpdesk/approvalrequest/{not_an_id}/decide/",
        f"/admin/helpdesk/approvalrequest/{not_an_id}/finish/",
    ]
    for url in gets:
        assert desk_client.get(url).status_code == 404, url
    for url in posts:
        assert desk_client.post(url, {"decision": "approve", "text": "x", "status": "open"}).status_code == 404, url


def test_a_number_that_is_not_one_in_a_desk_form_or_query_is_ignored(desk_client, caller, staff_member, check_for):
    """ "\u00b2" passes str.isdigit() and fails int(): a case, request or seen event named so is none."""
    check_for(caller, staff_member)
    assert desk_client.get(person_url(caller), {"case": "\u00b2"}).status_code == 200

    response = desk_client.post(action_url(caller, "sign_out_everywhere"), {"reason": "phone stolen", "seen": "\u00b2"})

    assert response.status_code == 200
    assert not events("sessions.ended", subject=caller)
    check_url = reverse("admin:helpdesk_identity_check", args=[caller.pk])
    response = desk_client.post(
        f"{check_url}?approval=\u00b2", {"method": "photo_id_in_person", "reference": "INC-3", "case": ""}
    )
    assert response.status_code == 302 and response["Location"] == person_url(caller)


def test_case_notes_are_appended(desk_client, caller, staff_member):
    case = services.open_case(caller, actor=staff_member, category="lockout", note="Called at 9")
    url = reverse("admin:helpdesk_case_note", args=[case.pk])
    desk_client.post(url, {"text": "Waiting for photo ID", "status": "waiting"})
    case.refresh_from_db()
    assert case.status == "waiting"
    assert list(case.notes.values_list("text", flat=True)) == ["Called at 9", "Waiting for photo ID"]
    assert desk_client.get(url).status_code == 405


STAFF_ACTION_PARAMS = {
    "unlock": {"reason": "r"},
    "issue_bypass_codes": {"count": 1, "valid_minutes": 15},
    "send_recovery_link": {},
    "retire_device": {"registration": "0", "reason": "r"},
    "report_lost": {"registration": "0"},
    "sign_out_everywhere": {"reason": "r"},
    "approve_vpn": {"reason": "r"},
    "revoke_vpn": {"reason": "r"},
    "change_details": {"department": "Elsewhere", "reason": "r"},
}


@pytest.mark.parametrize("action", sorted(STAFF_ACTION_PARAMS))
def test_bnd08_every_action_on_a_staff_account_waits_and_changes_nothing(action, staff_member, second_agent, check_for):
    from helpdesk.actions import ACTIONS

    assert set(STAFF_ACTION_PARAMS) == set(ACTIONS) - {"register_security_key"}  # that one is not offered (live)
    check = check_for(second_agent, staff_member)
    before = second_agent.__class__.objects.values().get(pk=second_agent.pk)
    messages_before = OutboundMessage.objects.filter(user=second_agent).count()

    outcome = runner.perform(
        action, second_agent, actor=staff_member, identity_check=check, params=STAFF_ACTION_PARAMS[action]
    )

    assert outcome.request is not None
    assert outcome.request.reasons == [services.STAFF_ACCOUNT_REASON]
    assert second_agent.__class__.objects.values().get(pk=second_agent.pk) == before
    assert not events("helpdesk.action")
    assert OutboundMessage.objects.filter(user=second_agent).count() == messages_before
    assert events("helpdesk.approval_requested", subject=second_agent)
