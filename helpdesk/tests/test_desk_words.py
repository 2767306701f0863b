"""The help desk's words: a four-eyes request in sentences (who asks what for whom, with what, why, since when), every
reason a second agent is needed (AC-04), what happens next, waiting requests on the admin home page, audit events as
sentences with the record one click away, and the person page's labels."""

import dataclasses
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from freezegun import freeze_time

from helpdesk import approvals, runner, services
from helpdesk.actions import ACTIONS, device_words, settings_words
from helpdesk.models import ApprovalRequest
from identity import audit, events
from identity.models import AuditEvent

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def text(response) -> str:
    """The page's visible words, tags removed and spaces collapsed."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", response.content.decode(), flags=re.S)
    words = re.sub(r"[ \t\r\n]+", " ", re.sub(r"<[^>]+>", " ", html)).strip()  # keeps no-break spaces
    return words.replace("&#x27;", "'").replace("&quot;", '"')


@pytest.fixture
def nurse(make_user, enroll):
    person = make_user("nurse7", first_name="Nia", last_name="Ward", is_staff=True)
    enroll(person)
    return person


def test_ac_04_a_recovery_link_request_names_every_reason_for_a_second_agent(
    desk_client, staff_member, second_agent, nurse, check_for, sign_in
):
    with freeze_time(timezone.now() - timedelta(hours=1)):
        services.change_person_details(nurse, actor=second_agent, reason="INC-1 new address", email="nia@new.example")
    check_for(nurse, staff_member)

    desk_client.post(reverse("admin:helpdesk_action", args=[nurse.pk, "send_recovery_link"]), {"case": ""})

    [request] = ApprovalRequest.objects.all()
    assert request.reasons[0] == services.STAFF_ACCOUNT_REASON
    assert request.reasons[1].startswith("The email address was changed 1\xa0hour before this was asked (at ")
    assert request.reasons[1].endswith(
        "from nurse7@example.edu to nia@new.example. The link goes to the new address, which could be an attacker's."
    )
    approver = Client()
    sign_in(approver, second_agent)
    page = text(approver.get(reverse("admin:helpdesk_approvalrequest_change", args=[request.pk])))
    for reason in request.reasons:
        assert reason in page


def test_a_request_reads_as_sentences_to_the_approver(
    desk_client, staff_member, second_agent, nurse, check_for, sign_in
):
    staff_member.first_name, staff_member.last_name = "Sam", "Lee"
    staff_member.save()
    check_for(nurse, staff_member)
    filed = desk_client.post(
        reverse("admin:helpdesk_action", args=[nurse.pk, "issue_bypass_codes"]),
        {"count": "1", "valid_minutes": "15", "case": ""},
        follow=True,
    )
    # The requester is told what happens next, and where the second agent finds it.
    told = text(filed)
    assert "Asked a second agent to approve this (Approval request " in told
    assert "who sees it on the admin home page and under Approval requests" in told
    assert "Once it is approved, you finish it from the request" in told

    approver = Client()
    sign_in(approver, second_agent)
    queue = text(approver.get(reverse("admin:helpdesk_approvalrequest_changelist")))
    asks = "Sam Lee (ID staff1) asks to issue bypass codes for Nia Ward (ID nurse7)."
    assert asks in queue and "1 bypass code, valid for 15 minutes" in queue
    assert "This is a staff account" in queue
    assert "issue_bypass_codes" not in queue and "valid_minutes" not in queue

    [request] = ApprovalRequest.objects.all()
    page = text(approver.get(reverse("admin:helpdesk_approvalrequest_change", args=[request.pk])))
    assert asks in page
    assert "With 1 bypass code, valid for 15 minutes" in page
    assert f"Why a second agent {services.STAFF_ACCOUNT_REASON}" in page
    assert re.search(r"Asked \d\d:\d\d on \d+ \w+ \d{4} \(0\xa0minutes ago\)", page)
    assert "Approving does not run this now" in page
    # The record as kept, one click away (a <details> element), never in the sentences themselves.
    assert page.count("issue_bypass_codes") == 1 and "As recorded" in page


def test_the_admin_home_page_shows_waiting_requests_and_the_ones_to_finish(
    desk_client, staff_member, second_agent, nurse, check_for, sign_in
):
    check = check_for(nurse, staff_member)
    index = reverse("admin:index")
    assert "Waiting for a second agent" not in text(desk_client.get(index))
    request = runner.perform(
        "issue_bypass_codes", nurse, actor=staff_member, identity_check=check, params={"count": 2, "valid_minutes": 30}
    ).request

    approver = Client()
    sign_in(approver, second_agent)
    home = text(approver.get(index))
    assert "Waiting for a second agent: 1" in home
    assert f"{request} : staff1 asks to issue bypass codes for Nia Ward (ID nurse7). Asked 0\xa0minutes ago." in home

    approvals.approve_request(request, actor=second_agent)
    home = text(desk_client.get(index))
    assert "Waiting for a second agent: 0" in home
    assert "Approved, for you to finish with the caller:" in home and str(request) in home


def test_every_audit_action_has_words_and_a_new_one_is_refused_without(user):
    with pytest.raises(ValueError, match="has no words"):
        audit.record("helpdesk.something_new", subject=user)
    assert all(sentence and sentence[0].isupper() for sentence in events.EVENTS.values())
    assert events.describe("signin.second_factor_failed", {"factor": "phone", "consecutive_failures": 2}) == (
        "Wrong second-factor code (a code by text or call): 2 in a row"
    )
    assert events.describe("helpdesk.action", {"action": "approve_vpn", "method": "video_call_with_photo_id"}) == (
        "Help desk: approve VPN access"
    )
    assert events.describe(
        "helpdesk.action", {"action": "approve_vpn", "method": "video_call_with_photo_id", "reference": "INC-4"}
    ) == ("Help desk: approve VPN access (identity check: Photo ID checked on a video call, reference INC-4)")


def test_events_read_as_sentences_on_the_person_page_and_in_the_audit_log(desk_client, caller, staff_member, check_for):
    check = check_for(caller, staff_member, reference="INC-77")
    runner.perform("approve_vpn", caller, actor=staff_member, identity_check=check, params={"reason": "new job"})

    page = text(desk_client.get(reverse("admin:identity_user_change", args=[caller.pk])))
    assert "Help desk: approve VPN access (identity check: Photo ID checked in person, reference INC-77)" in page
    assert "VPN access approved: “new job”" in page
    assert "Identity checked: Photo ID checked in person (reference INC-77)" in page

    log = desk_client.get(reverse("admin:identity_auditevent_changelist"))
    content = log.content.decode()
    assert "Help desk: approve VPN access (identity check: Photo ID checked in person, reference INC-77)" in content
    # The raw record, for auditors, one click away.
    assert re.search(r"<details class=\"desk-raw\"><summary>As recorded</summary><code>helpdesk.action</code>", content)
    # Chosen by its words: only that action's events.
    chosen = desk_client.get(reverse("admin:identity_auditevent_changelist"), {"action": "helpdesk.action"})
    assert "Help desk: … (helpdesk.action)" in chosen.content.decode()
    assert [e.action for e in chosen.context["cl"].result_list] == ["helpdesk.action"]
    event = AuditEvent.objects.get(action="helpdesk.action")
    detail = text(desk_client.get(reverse("admin:identity_auditevent_change", args=[event.pk])))
    assert "What happened: Help desk: approve VPN access" in detail or "What happened Help desk" in detail


def test_the_person_page_speaks_plainly(desk_client, caller):
    page = desk_client.get(reverse("admin:identity_user_change", args=[caller.pk]))
    content = page.content.decode()
    words = text(page)
    assert "150 characters or fewer" not in words
    assert "VPN access" in words and "Vpn access" not in words
    assert re.search(r"<h1>\s*Cal Ler \(ID caller1\)\s*</h1>", content)
    assert ">Devices</a>" in content and ">Registrations</a>" not in content
    assert "Institution ID" in words


@pytest.mark.parametrize(
    "action,params,expected",
    [
        ("issue_bypass_codes", {"count": 1, "valid_minutes": 15}, "1 bypass code, valid for 15 minutes"),
        (
            "register_security_key",
            {"label": "Work laptop", "form": "passkey"},
            "A passkey on their own phone or computer (unlocked with face, fingerprint or screen lock); named “Work "
            "laptop”",
        ),
        (
            "register_security_key",
            {"label": "Desk key"},
            "A security key they brought (touched when it blinks); named “Desk key”",
        ),
        ("send_recovery_link", {}, "Emailed to nurse7@example.edu"),
        ("approve_vpn", {"reason": "new job"}, "Reason given: “new job”"),
        (
            "change_details",
            {"email": None, "first_name": "Nia", "department": "Surgery", "reason": "moved"},
            "Change department to “Surgery”; reason given: “moved”",
        ),
        ("report_lost", {"registration": "0"}, "A device no longer on record"),
        ("sign_out_everywhere", {}, "Nothing to choose for this action."),
    ],
)
def test_what_a_filed_request_will_do_reads_in_words(nurse, action, params, expected):
    assert settings_words(action, params, nurse) == expected


def test_the_device_a_request_names_reads_as_agents_know_it(nurse):
    registration = nurse.registrations.get()
    words = settings_words("retire_device", {"registration": str(registration.pk), "reason": "broken"}, nurse)
    assert words == f"The device {device_words(registration)}; reason given: “broken”"


def test_an_actions_words_come_from_its_own_definition(nurse, monkeypatch):
    """A parameter's words belong to the action that has it: a new action with a ``count`` says what it counts, not
    bypass codes, without settings_words knowing its name."""
    lend = dataclasses.replace(
        ACTIONS["approve_vpn"], key="lend_token", words=lambda params, person: [f"{params['count']} loan tokens"]
    )
    monkeypatch.setitem(ACTIONS, "lend_token", lend)
    assert settings_words("lend_token", {"count": 2, "reason": "r"}, nurse) == "2 loan tokens; reason given: “r”"


def test_the_person_page_names_the_factor_of_the_last_sign_in_in_words(desk_client, caller, sign_in):
    sign_in(Client(), caller)  # with the authenticator app

    page = desk_client.get(reverse("admin:identity_user_change", args=[caller.pk])).content.decode()

    last = re.search(r"<dt>Last sign-in</dt><dd>(.*?)</dd>", page).group(1)
    assert last.endswith(" with the authenticator app"), last
