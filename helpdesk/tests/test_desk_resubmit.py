"""The same desk form posted twice (a reload of the page that answered it, a second tab, a double click) does
nothing the second time and says what was done, when and by whom (BND-10 for bypass codes: one set, shown once;
BND-07 for the other actions). The Chromium walk is in ``test_browser_desk_resubmit.py``."""

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from devices.models import BypassCode, BypassCodeDevice, OutboundMessage, Registration
from helpdesk import errors, runner, selectors
from helpdesk.actions import ACTIONS
from helpdesk.models import ApprovalRequest
from identity.models import AuditEvent

from .test_desk_actions import action_url, lock, person_url

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def _said(response) -> str:
    """The last message on the page (a first post's message, never followed here, comes before it)."""
    return [str(m) for m in response.context["messages"]][-1]


def _form_of(desk_client, person, action) -> dict:
    """What the action's page sends back untouched: its hidden fields (the desk event it was shown after)."""
    page = desk_client.get(action_url(person, action))
    assert page.status_code == 200, page.content[:300]
    form = page.context["form"]
    return {field.html_name: field.value() for field in form.hidden_fields() if field.value() is not None}


def test_bnd10_bypass_codes_posted_twice_make_one_set_and_the_reload_shows_no_codes(
    desk_client, caller, staff_member, check_for
):
    check_for(caller, staff_member)
    posted = {**_form_of(desk_client, caller, "issue_bypass_codes"), "count": "2", "valid_minutes": "15", "case": ""}

    first = desk_client.post(action_url(caller, "issue_bypass_codes"), posted)
    codes = first.context["codes"]
    assert len(codes) == 2 and "no-store" in first["Cache-Control"]
    again = desk_client.post(action_url(caller, "issue_bypass_codes"), posted, follow=True)

    assert again.redirect_chain == [(person_url(caller), 302)]
    said = _said(again)
    assert said.startswith("Nothing was done now: “issue bypass codes” was done for this person at ")
    assert ", by you, after this page was opened" in said and said.endswith(errors.CODES_SHOWN_ONCE)
    assert not [code for code in codes if code in again.content.decode()]
    [device] = BypassCodeDevice.objects.filter(user=caller)
    assert device.confirmed and BypassCode.objects.filter(device=device).count() == 2
    assert AuditEvent.objects.filter(action="bypass_codes.issued", subject=caller).count() == 1
    assert AuditEvent.objects.filter(action="helpdesk.action", subject=caller).count() == 1
    assert OutboundMessage.objects.filter(user=caller, template="notice:bypass_codes.issued").count() == 1


def test_bnd10_a_page_opened_before_another_agents_codes_does_not_replace_them(
    desk_client, sign_in, caller, staff_member, second_agent, check_for
):
    """Agent A's page was open while B issued and read out a set: A's post would stop B's codes. It is refused."""
    a, b = desk_client, Client()
    sign_in(b, second_agent)
    check_for(caller, staff_member)
    check_for(caller, second_agent)
    opened_by_a = _form_of(a, caller, "issue_bypass_codes")
    b_form = {**_form_of(b, caller, "issue_bypass_codes"), "count": "1", "valid_minutes": "15", "case": ""}
    assert b.post(action_url(caller, "issue_bypass_codes"), b_form).status_code == 200

    refused = a.post(
        action_url(caller, "issue_bypass_codes"), {**opened_by_a, "count": "1", "valid_minutes": "15"}, follow=True
    )

    said = _said(refused)
    assert "“issue bypass codes” was done for this person at " in said and f", by {second_agent.username}, " in said
    [device] = BypassCodeDevice.objects.filter(user=caller, confirmed=True)
    assert device.issued_by == second_agent


# Each other action, posted twice: (action, what its form sends, how to get the person ready for it).
TWICE = {
    "unlock": ({"reason": "INC-1 locked out"}, "locked"),
    "send_recovery_link": ({}, None),
    "sign_out_everywhere": ({"reason": "phone stolen"}, None),
    "approve_vpn": ({"reason": "manager asked"}, None),
    "change_details": ({"department": "Cardiology", "reason": "moved"}, None),
    "retire_device": ({"reason": "old tablet"}, "tablet"),
    "report_lost": ({}, "tablet"),
}


@pytest.mark.parametrize("action", sorted(TWICE))
def test_bnd07_every_desk_action_posted_twice_does_nothing_the_second_time(
    action, desk_client, caller, staff_member, check_for, enroll
):
    values, ready = TWICE[action]
    if ready == "locked":
        lock(caller)
    if ready == "tablet":
        tablet = enroll(caller, kind="tablet", platform="android")
        values = {**values, "registration": str(tablet.pk)}
    if action == "change_details":
        values = {"email": caller.email, "first_name": caller.first_name, "last_name": caller.last_name, **values}
    check_for(caller, staff_member)
    posted = {**_form_of(desk_client, caller, action), **values, "case": ""}

    first = desk_client.post(action_url(caller, action), posted)
    assert first.status_code == 302, first.content[:500]
    events = AuditEvent.objects.count()
    messages = OutboundMessage.objects.count()
    person = caller.__class__.objects.values().get(pk=caller.pk)
    devices = list(Registration.objects.filter(user=caller).values("pk", "status"))

    again = desk_client.post(action_url(caller, action), posted, follow=True)

    assert again.redirect_chain == [(person_url(caller), 302)]
    said = _said(again)
    assert said.startswith(f"Nothing was done now: “{ACTIONS[action].phrase}” was done for this person at ")
    assert errors.CODES_SHOWN_ONCE not in said
    assert AuditEvent.objects.count() == events
    assert OutboundMessage.objects.count() == messages
    assert caller.__class__.objects.values().get(pk=caller.pk) == person
    assert list(Registration.objects.filter(user=caller).values("pk", "status")) == devices


def test_bnd08_a_request_filed_twice_is_filed_once(desk_client, staff_member, superuser, check_for):
    check_for(superuser, staff_member)
    posted = {**_form_of(desk_client, superuser, "sign_out_everywhere"), "reason": "laptop stolen", "case": ""}
    desk_client.post(action_url(superuser, "sign_out_everywhere"), posted)

    again = desk_client.post(action_url(superuser, "sign_out_everywhere"), posted, follow=True)

    said = _said(again)
    assert "“sign them out everywhere” was asked of a second agent" in said
    assert AuditEvent.objects.filter(action="helpdesk.approval_requested").count() == 1
    assert ApprovalRequest.objects.count() == 1


def test_bnd07_the_runner_refuses_a_stale_page_under_its_lock(caller, staff_member, check_for):
    """The view's early answer is a read; the runner decides in the action's transaction (two posts at once)."""
    check = check_for(caller, staff_member)
    assert selectors.last_desk_event(caller) is None
    seen = 0
    params = {"reason": "r"}
    runner.perform("sign_out_everywhere", caller, actor=staff_member, identity_check=check, params=params, seen=seen)
    with pytest.raises(ValidationError) as refused:
        runner.perform(
            "sign_out_everywhere", caller, actor=staff_member, identity_check=check, params=params, seen=seen
        )
    assert refused.value.code == "acted_since"
    assert AuditEvent.objects.filter(action="sessions.ended", subject=caller).count() == 1
    # Without a page (an approved request, a script) there is nothing to compare.
    runner.perform("sign_out_everywhere", caller, actor=staff_member, identity_check=check, params=params)
    assert AuditEvent.objects.filter(action="sessions.ended", subject=caller).count() == 2


def test_the_confirm_button_names_a_key_or_a_passkey(desk_client, caller, staff_member, check_for):
    check_for(caller, staff_member)
    url = reverse("admin:helpdesk_action", args=[caller.pk, "register_security_key"])
    page = desk_client.get(url)
    assert page.context["confirm"] == "Yes, register a security key"
    html = page.content.decode()
    assert 'data-words-passkey="Yes, register a passkey"' in html
    assert 'data-words-security_key="Yes, register a security key"' in html
    # The page answering a refused passkey keeps the passkey chosen, and its button says so.
    refused = desk_client.post(url, {**_form_of(desk_client, caller, "register_security_key"), "form": "passkey"})
    assert refused.context["confirm"] == "Yes, register a passkey"


def test_bnd07_a_case_opened_twice_is_opened_once(desk_client, sign_in, caller, staff_member, second_agent):
    """ "Open a case" posted again (a reload, a double click) opens nothing and names the case opened; so does a page
    opened before a colleague's case for the same person. A page opened after it opens a new one."""
    from helpdesk.models import Case

    url = reverse("admin:helpdesk_open_case", args=[caller.pk])
    posted = {**_hidden(desk_client.get(url)), "category": "lockout", "note": "Called at 9"}
    assert desk_client.post(url, posted).status_code == 302
    [case] = Case.objects.filter(person=caller)

    again = desk_client.post(url, posted, follow=True)

    assert again.redirect_chain == [(person_url(caller), 302)]
    said = _said(again)
    assert said.startswith(f"Nothing was opened now: case {case.pk} was opened for this person at ")
    assert ", by you, after this page was opened" in said
    assert Case.objects.filter(person=caller).count() == 1
    assert AuditEvent.objects.filter(action="helpdesk.case_opened", subject=caller).count() == 1

    colleague = Client()
    sign_in(colleague, second_agent)
    opened_before = {**_hidden(colleague.get(url)), "category": "other"}
    assert desk_client.post(url, {**_hidden(desk_client.get(url)), "category": "vpn_access"}).status_code == 302
    refused = colleague.post(url, opened_before, follow=True)
    assert f", by {staff_member.username}, after this page was opened" in _said(refused)
    assert Case.objects.filter(person=caller).count() == 2


def _hidden(page) -> dict:
    form = page.context["form"]
    return {field.html_name: field.value() for field in form.hidden_fields() if field.value() is not None}
