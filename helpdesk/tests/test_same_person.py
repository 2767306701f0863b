"""AC-12: the own-account and four-eyes rules compare people, not account rows. Accounts that share an email address
(whatever its case) or a directory identity are one person: an agent's second account is still their own, and a
person's staff account makes every account of theirs a staff person's."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from devices import bypass_codes
from helpdesk import approvals, errors, runner, services
from helpdesk.models import ApprovalRequest
from identity import services as identity_services
from identity.models import AuditEvent, User
from identity.selectors import same_person

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture
def agents_second_account(make_user, enroll, staff_member):
    """The agent's own everyday account: another row, the same person (their email, in other letters)."""
    person = make_user("s.one", email=staff_member.email.upper(), first_name="Sam", last_name="One")
    enroll(person)
    return person


def test_ac_12_same_person_by_row_email_or_directory_identity():
    a = User(pk=1, username="a", email="Ann.Lee@Example.edu", source="ldap", directory_id="guid-1")
    assert same_person(a, a)
    assert same_person(a, User(pk=2, username="b", email=" ann.lee@example.EDU "))
    assert same_person(a, User(pk=3, username="c", email="", source="ldap", directory_id="guid-1"))
    # Not the same person: another directory's id, another address, or two accounts without an address.
    assert not same_person(a, User(pk=4, username="d", email="", source="scim", directory_id="guid-1"))
    assert not same_person(a, User(pk=5, username="e", email="ann.lee@example.org"))
    assert not same_person(User(pk=6, username="f", email=""), User(pk=7, username="g", email=""))
    assert not same_person(a, None)


def test_ac_12_bnd08_an_agent_cannot_act_on_their_own_second_account(
    desk_client, staff_member, agents_second_account, check_for
):
    person = agents_second_account
    before = AuditEvent.objects.count()
    with pytest.raises(ValidationError) as refused:
        check_for(person, staff_member)
    assert refused.value.messages == [errors.OWN_ACCOUNT]
    # Whatever door the action comes through, down to the services the desk calls.
    with pytest.raises(ValidationError):
        bypass_codes.issue_bypass_codes(person, actor=staff_member, count=1, valid_minutes=15)
    with pytest.raises(ValidationError):
        identity_services.approve_vpn_access(person, actor=staff_member, reason="mine")
    with pytest.raises(ValidationError):
        services.change_person_details(person, actor=staff_member, reason="mine", department="Elsewhere")
    assert AuditEvent.objects.count() == before
    assert not person.bypasscodedevice_set.exists()
    person.refresh_from_db()
    assert person.vpn_access == User.VpnAccess.NONE

    page = desk_client.get(reverse("admin:identity_user_change", args=[person.pk]))
    assert page.context["desk_actions"] == [] and page.context["own_account"]
    assert b"This is your own account" in page.content
    response = desk_client.get(reverse("admin:helpdesk_action", args=[person.pk, "approve_vpn"]), follow=True)
    assert errors.OWN_ACCOUNT.encode() in response.content


def test_ac_12_bnd08_nobody_approves_a_request_by_or_for_themselves_under_another_account(
    make_user, enroll, staff_member, second_agent, superuser, check_for
):
    """Agent A files a request on a staff account; A's second account, and the person's own second account, are
    refused as approvers; a third agent approves."""
    from django.contrib.auth.models import Group

    desk = Group.objects.get(name="Help desk")
    a_again = make_user("staff1b", email=staff_member.email.title(), is_staff=True)
    person_again = make_user("root1b", email=superuser.email, is_staff=True)
    for account in (a_again, person_again):
        account.groups.add(desk)
    check = check_for(superuser, staff_member)
    request = runner.perform(
        "sign_out_everywhere", superuser, actor=staff_member, identity_check=check, params={"reason": "laptop stolen"}
    ).request

    for approver in (a_again, person_again):
        with pytest.raises(ValidationError) as refused:
            approvals.approve_request(request, actor=approver)
        assert refused.value.messages == [errors.APPROVER_IS_PARTY]
        with pytest.raises(ValidationError):
            approvals.decline_request(request, actor=approver)
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.WAITING

    approvals.approve_request(request, actor=second_agent)
    request.refresh_from_db()
    assert (request.status, request.decided_by) == (ApprovalRequest.Status.APPROVED, second_agent)


def test_ac_12_bnd08_a_staff_persons_everyday_account_needs_a_second_agent(
    staff_member, second_agent, agents_second_account, check_for
):
    """Another agent acting on agent A's everyday account: it is a staff person's, so four eyes."""
    check = check_for(agents_second_account, second_agent)
    outcome = runner.perform(
        "issue_bypass_codes",
        agents_second_account,
        actor=second_agent,
        identity_check=check,
        params={"count": 1, "valid_minutes": 15},
    )
    assert outcome.request is not None and not outcome.codes
    assert outcome.request.reasons == [
        f"This person also has a staff account ({staff_member.username}, same email address or directory "
        "identity). Actions on staff need a second agent."
    ]


def test_ac_12_a_recovery_link_approved_by_the_requesters_other_account_is_refused(
    make_user, enroll, staff_member, superuser, check_for
):
    from helpdesk.models import IdentityCheck

    a_again = make_user("staff1b", email=staff_member.email, is_staff=True)
    check = IdentityCheck(method="photo_id_in_person", reference="INC-12")
    with pytest.raises(ValidationError) as refused:
        services.send_reactivation_link(superuser, actor=staff_member, approved_by=a_again, identity_check=check)
    assert refused.value.messages == [errors.NAMED_APPROVER_REFUSED]


def test_bnd08_ac_12_no_case_is_opened_or_noted_on_ones_own_account(
    desk_client, staff_member, second_agent, agents_second_account
):
    from helpdesk.models import Case, CaseNote

    for own in (staff_member, agents_second_account):
        with pytest.raises(ValidationError) as refused:
            services.open_case(own, actor=staff_member, category="other", note="mine")
        assert refused.value.messages == [errors.OWN_ACCOUNT]
        # A post made by hand past the page, which hides the button.
        page = desk_client.post(reverse("admin:helpdesk_open_case", args=[own.pk]), {"category": "other", "seen": 0})
        assert errors.OWN_ACCOUNT in page.content.decode()
    assert not Case.objects.exists()

    case = services.open_case(agents_second_account, actor=second_agent, category="other")
    with pytest.raises(ValidationError) as refused:
        services.add_case_note(case, actor=staff_member, text="closing my own case", status="closed")
    assert refused.value.messages == [errors.OWN_ACCOUNT]
    desk_client.post(reverse("admin:helpdesk_case_note", args=[case.pk]), {"text": "mine", "status": "closed"})
    case.refresh_from_db()
    assert case.status != "closed" and not CaseNote.objects.filter(case=case).exists()
    assert not AuditEvent.objects.filter(action="helpdesk.case_noted").exists()
