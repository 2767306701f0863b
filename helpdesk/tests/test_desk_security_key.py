"""Registering a security key at the desk through the admin (BND-07, BND-08), with a software key's real answers."""

import json

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from devices.models import Registration, SecurityKeyDevice, WebAuthnChallenge
from devices.services import security_keys
from devices.tests.authenticator import SoftwareKey
from devices.tests.helpers import IP, events, new_key, registration_challenge, sign_in
from devices.webauthn import SessionChallenge
from helpdesk import approvals, errors, runner, services
from helpdesk.forms import PASSKEY, SECURITY_KEY
from helpdesk.models import ApprovalRequest
from identity.models import AuditEvent
from identity.services import SecondFactorOutcome
from testsupport import PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

RP_ID = "mfa.example.edu"
ORIGIN = "https://mfa.example.edu"


@pytest.fixture(autouse=True)
def relying_party(settings):
    settings.WEBAUTHN_RP_ID = RP_ID
    settings.WEBAUTHN_ORIGINS = [ORIGIN]


def _urls(person):
    return (
        reverse("admin:helpdesk_security_key_options", args=[person.pk]),
        reverse("admin:helpdesk_action", args=[person.pk, "register_security_key"]),
    )


def test_bnd07_desk_registers_a_key_for_the_person_after_a_check(desk_client, caller, staff_member, check_for):
    options_url, page_url = _urls(caller)
    assert desk_client.post(options_url, {"label": "Blue key"}).status_code == 403  # no identity check yet
    check_for(caller, staff_member)
    assert desk_client.get(page_url).status_code == 200

    options = desk_client.post(options_url, {"label": "Blue key"}).json()
    key = SoftwareKey(rp_id=RP_ID, origin=ORIGIN)
    response = desk_client.post(page_url, {"label": "Blue key", "credential": key.create(options)})

    assert response.status_code == 302, response.content[:800]
    registration = caller.registrations.get(kind=Registration.Kind.SECURITY_KEY)
    assert registration.status == Registration.Status.ACTIVE
    assert registration.security_key_device.registered_by == staff_member
    bound = AuditEvent.objects.get(action="device.bound", subject=caller, details__registered_by="staff1")
    assert bound.actor == staff_member
    desk = AuditEvent.objects.get(action="helpdesk.action", subject=caller)
    assert desk.details["action"] == "register_security_key"


def test_bnd07_the_answer_must_come_from_this_sessions_challenge(desk_client, caller, staff_member, check_for):
    options_url, page_url = _urls(caller)
    check_for(caller, staff_member)
    options = desk_client.post(options_url, {"label": "Blue key"}).json()
    answer = SoftwareKey(rp_id=RP_ID, origin=ORIGIN).create(options)
    desk_client.post(page_url, {"label": "Blue key", "credential": answer})

    again = desk_client.post(page_url, {"label": "Blue key", "credential": answer})  # the challenge is spent

    assert again.status_code == 200
    assert caller.registrations.filter(kind=Registration.Kind.SECURITY_KEY).count() == 1


def test_bnd08_WA_05_a_key_for_a_staff_colleague_is_approved_by_a_second_agent_then_registered_at_the_desk(
    desk_client, staff_member, second_agent, auditor, check_for, settings
):
    """The desk registers a key for a colleague as for anyone, with the same identity check; a staff account also
    needs a second agent (BND-08), who approves before the key is touched, since the touch cannot wait."""
    options_url, page_url = _urls(auditor)
    check_for(auditor, staff_member)
    refused = desk_client.post(options_url, {"label": "Desk key"})
    assert refused.status_code == 403 and refused.json() == {"error": errors.KEY_NEEDS_APPROVAL_FIRST}
    page = desk_client.get(page_url).content.decode()
    assert "A second agent must approve this" in page and "data-webauthn" not in page

    assert desk_client.post(page_url, {"label": "Desk key"}).status_code == 302
    request = ApprovalRequest.objects.get(person=auditor, action="register_security_key")
    assert request.status == ApprovalRequest.Status.WAITING and request.params == {
        "label": "Desk key",
        "form": "security_key",
    }
    approvals.approve_request(request, actor=second_agent)
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.READY and not SecurityKeyDevice.objects.exists()
    approved = AuditEvent.objects.get(action="helpdesk.request_approved", subject=auditor)
    assert approved.details["runs"] == "when the requester finishes it with the person at the desk"

    # The approval page sends the requester to the desk page; a bare "finish" without the key runs nothing.
    desk_client.post(reverse("admin:helpdesk_request_finish", args=[request.pk]))
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.READY
    page = desk_client.get(page_url).content.decode()
    assert "approved this" in page and 'data-webauthn="register"' in page and 'value="Desk key"' in page

    options = desk_client.post(options_url, {"label": "Desk key"}).json()
    key = SoftwareKey(rp_id=RP_ID, origin=ORIGIN)
    answer = key.create(options)
    wrong = desk_client.post(page_url, {"label": "Desk key", "credential": answer.replace('"type"', '"kind"')})
    assert wrong.status_code == 200  # refused; the approved request waits for another try
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.READY
    rejected = AuditEvent.objects.get(action="enrollment.security_key_rejected", subject=auditor)
    assert rejected.actor == staff_member and rejected.details["reason"] == "invalid_response"
    options = desk_client.post(options_url, {"label": "Desk key"}).json()
    response = desk_client.post(page_url, {"label": "Desk key", "credential": key.create(options)})

    assert response.status_code == 302, response.content[:800]
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.APPROVED
    registration = auditor.registrations.get(kind=Registration.Kind.SECURITY_KEY)
    assert registration.status == Registration.Status.ACTIVE and registration.label == "Desk key"
    assert registration.security_key_device.registered_by == staff_member
    desk = AuditEvent.objects.get(action="helpdesk.action", subject=auditor)
    assert desk.actor == staff_member
    assert {k: desk.details[k] for k in ("action", "request", "approved_by")} == {
        "action": "register_security_key",
        "request": request.pk,
        "approved_by": second_agent.pk,
    }

    # And the colleague is let into the admin past the staff date with it.
    settings.STAFF_PHISHING_RESISTANT_FROM = "2000-01-01"
    colleague = Client()
    colleague.post("/account/sign-in/", {"username": auditor.username, "password": PASSWORD})
    options = colleague.post("/security-key/sign-in/options/", {"purpose": "sign_in"}).json()
    colleague.post("/security-key/sign-in/", {"purpose": "sign_in", "credential": key.get(options)})
    assert colleague.get("/admin/").status_code == 200


def test_desk_registration_records_who_registered_it_for_whom(make_user):
    person, staff = make_user("asmith"), make_user("desk1", is_staff=True)
    key = new_key()
    options, claim = registration_challenge(person, session="staff-session")
    registration = services.register_security_key_at_desk(
        person, actor=staff, response_json=key.create(options), challenge=claim, label="Desk-issued key", ip=IP
    )
    assert registration.user == person and registration.status == Registration.Status.ACTIVE
    assert registration.security_key_device.registered_by == staff
    event = events("device.bound").get()
    assert (event.actor, event.subject) == (staff, person)
    assert event.details == {
        "registration": registration.pk,
        "kind": "security_key",
        "factor": "security_key",
        "registered_by": "desk1",
        "registered_for": person.username,
    }
    assert sign_in(person, key) == SecondFactorOutcome.OK


def test_desk_registration_refuses_non_staff_and_staff_on_their_own_account(make_user):
    person, staff = make_user("asmith"), make_user("desk1", is_staff=True)
    for actor, message, subject in (
        (make_user("colleague"), errors.STAFF_ONLY_KEY, person),
        (staff, errors.OWN_ACCOUNT, staff),
    ):
        options, claim = registration_challenge(subject, session="staff-session")
        with pytest.raises(ValidationError) as refused:
            services.register_security_key_at_desk(
                subject, actor=actor, response_json=new_key().create(options), challenge=claim, label="Key"
            )
        assert refused.value.messages == [message]
    assert not SecurityKeyDevice.objects.exists()


# --- A passkey on the person's own phone or computer, at the desk ------------------------------------------------


def _passkey():
    return SoftwareKey(rp_id=RP_ID, origin=ORIGIN, resident=True)


def test_WA_01_desk_registers_a_passkey_for_the_person_after_the_same_check(
    desk_client, caller, staff_member, check_for
):
    options_url, page_url = _urls(caller)
    assert desk_client.post(options_url, {"label": "Cal's phone", "form": "passkey"}).status_code == 403
    check_for(caller, staff_member)
    page = desk_client.get(page_url).content.decode()
    assert 'value="passkey"' in page and "passkey on their own phone or computer" in page

    options = desk_client.post(options_url, {"label": "Cal's phone", "form": "passkey"}).json()
    # Asked for as a passkey the person registers themselves is (WA-01): discoverable, the person verified.
    selection = options["authenticatorSelection"]
    assert (selection["residentKey"], selection["userVerification"]) == ("required", "required")
    answer = _passkey().create(options)
    response = desk_client.post(page_url, {"label": "Cal's phone", "form": "passkey", "credential": answer})

    assert response.status_code == 302, response.content[:800]
    registration = caller.registrations.get(kind=Registration.Kind.PASSKEY)
    device = registration.security_key_device
    assert registration.status == Registration.Status.ACTIVE
    assert (device.form, device.registered_by, device.user_verified) == ("passkey", staff_member, True)
    bound = AuditEvent.objects.get(action="device.bound", subject=caller, details__kind="passkey")
    assert bound.actor == staff_member
    assert {k: bound.details[k] for k in ("kind", "registered_by", "registered_for")} == {
        "kind": "passkey",
        "registered_by": "staff1",
        "registered_for": "caller1",
    }
    assert AuditEvent.objects.get(action="helpdesk.action", subject=caller).details["action"] == "register_security_key"


def test_WA_01_at_the_desk_a_passkey_that_did_not_verify_the_person_is_refused(
    desk_client, caller, staff_member, check_for
):
    options_url, page_url = _urls(caller)
    check_for(caller, staff_member)
    options = desk_client.post(options_url, {"label": "Cal's phone", "form": "passkey"}).json()
    answer = SoftwareKey(rp_id=RP_ID, origin=ORIGIN, resident=True, verifies_user=False).create(options)

    response = desk_client.post(page_url, {"label": "Cal's phone", "form": "passkey", "credential": answer})

    assert response.status_code == 200, response.content[:800]
    assert "could not register this passkey" in response.content.decode()
    assert not SecurityKeyDevice.objects.filter(user=caller).exists()
    assert not AuditEvent.objects.filter(action="helpdesk.action", subject=caller).exists()


def test_a_key_the_desk_registration_refuses_keeps_its_audit_event(desk_client, caller, staff_member, check_for):
    """The runner rolls the refused action back; the refusal's own event is written again outside that transaction."""
    options_url, page_url = _urls(caller)
    check_for(caller, staff_member)
    options = desk_client.post(options_url, {"label": "Cal's phone", "form": "passkey"}).json()
    answer = SoftwareKey(rp_id=RP_ID, origin=ORIGIN, resident=False).create(options)

    response = desk_client.post(page_url, {"label": "Cal's phone", "form": "passkey", "credential": answer})

    assert response.status_code == 200, response.content[:800]
    rejected = AuditEvent.objects.get(action="enrollment.security_key_rejected", subject=caller)
    assert rejected.actor == staff_member and rejected.details["reason"] == "not_discoverable"
    assert rejected.ip == "127.0.0.1"
    assert not SecurityKeyDevice.objects.filter(user=caller).exists()
    assert not AuditEvent.objects.filter(action="helpdesk.action", subject=caller).exists()


def test_what_the_challenge_was_issued_for_is_what_the_desk_registers(desk_client, caller, staff_member, check_for):
    """A page changed between the options and the answer cannot make a key asked for loosely count as a passkey."""
    options_url, page_url = _urls(caller)
    check_for(caller, staff_member)
    options = desk_client.post(options_url, {"label": "Blue key"}).json()
    answer = SoftwareKey(rp_id=RP_ID, origin=ORIGIN).create(options)

    response = desk_client.post(page_url, {"label": "Blue key", "form": "passkey", "credential": answer})

    assert response.status_code == 302, response.content[:800]
    assert caller.registrations.get(kind=Registration.Kind.SECURITY_KEY).security_key_device.form == "security_key"
    assert not caller.registrations.filter(kind=Registration.Kind.PASSKEY).exists()


def test_bnd08_WA_05_a_passkey_for_a_staff_colleague_is_what_the_second_agent_approved(
    desk_client, staff_member, second_agent, auditor, check_for
):
    options_url, page_url = _urls(auditor)
    check_for(auditor, staff_member)
    assert desk_client.post(page_url, {"label": "Work laptop", "form": "passkey"}).status_code == 302
    request = ApprovalRequest.objects.get(person=auditor, action="register_security_key")
    assert request.params == {"label": "Work laptop", "form": "passkey"}
    approvals.approve_request(request, actor=second_agent)

    # The options follow the approval, not what the page posts now.
    options = desk_client.post(options_url, {"label": "Work laptop", "form": "security_key"}).json()
    assert options["authenticatorSelection"]["residentKey"] == "required"
    answer = _passkey().create(options)
    response = desk_client.post(page_url, {"label": "Work laptop", "form": "passkey", "credential": answer})

    assert response.status_code == 302, response.content[:800]
    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.APPROVED
    registration = auditor.registrations.get(kind=Registration.Kind.PASSKEY)
    assert registration.security_key_device.registered_by == staff_member
    desk = AuditEvent.objects.get(action="helpdesk.action", subject=auditor)
    assert desk.details["approved_by"] == second_agent.pk


# --- A refused key spends its challenge: the agent starts again with a fresh one ---------------------------------


def _loose_answer_to_a_passkey_challenge(person):
    """A passkey challenge (options asking for a discoverable credential) in the desk's session, answered by a key
    that made a non-discoverable one: refused as a passkey, though the same answer would pass for a plain key."""
    options, row = security_keys.start_security_key_registration(person, session_key="desk-session", passkey=True)
    answer = SoftwareKey(rp_id=RP_ID, origin=ORIGIN, resident=False).create(json.loads(options))
    return answer, row


def _rejections(person) -> list[str]:
    rows = AuditEvent.objects.filter(action="enrollment.security_key_rejected", subject=person).order_by("sequence")
    return [event.details["reason"] for event in rows]


def test_a_challenge_the_desk_spent_on_a_refused_key_stays_spent(caller, staff_member, check_for):
    check = check_for(caller, staff_member)
    answer, row = _loose_answer_to_a_passkey_challenge(caller)

    def register(form):
        params = {"label": "Blue key", "form": form, "credential": answer}
        params["challenge"] = SessionChallenge(row.pk, "desk-session")
        return runner.perform("register_security_key", caller, actor=staff_member, identity_check=check, params=params)

    with pytest.raises(ValidationError):
        register(PASSKEY)
    # The same answer to the same challenge again, now as a plain key (which need not be discoverable): refused.
    with pytest.raises(ValidationError) as replayed:
        register(SECURITY_KEY)

    assert replayed.value.code == "challenge"
    assert WebAuthnChallenge.objects.get(pk=row.pk).consumed_at is not None
    assert not SecurityKeyDevice.objects.filter(user=caller).exists()
    assert _rejections(caller) == ["not_discoverable", "challenge_used"]
    assert not AuditEvent.objects.filter(action="helpdesk.action", subject=caller).exists()


def test_bnd08_an_approved_key_refused_at_the_desk_spends_its_challenge_and_waits(
    staff_member, second_agent, auditor, check_for
):
    check = check_for(auditor, staff_member)
    filing = {"label": "Desk key", "form": PASSKEY}
    filed = runner.perform("register_security_key", auditor, actor=staff_member, identity_check=check, params=filing)
    request = filed.request
    approvals.approve_request(request, actor=second_agent)
    answer, row = _loose_answer_to_a_passkey_challenge(auditor)
    key_answer = {"credential": answer, "challenge": SessionChallenge(row.pk, "desk-session")}

    for _ in range(2):
        with pytest.raises(ValidationError):
            approvals.finish_request(request, actor=staff_member, identity_check=check, answer=key_answer)

    request.refresh_from_db()
    assert request.status == ApprovalRequest.Status.READY  # it waits for another try, with a fresh challenge
    assert WebAuthnChallenge.objects.get(pk=row.pk).consumed_at is not None
    assert _rejections(auditor) == ["not_discoverable", "challenge_used"]
    assert not SecurityKeyDevice.objects.filter(user=auditor).exists()
