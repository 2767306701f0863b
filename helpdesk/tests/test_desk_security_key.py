"""Registering a security key at the desk through the admin (BND-07, BND-08), with a software key's real answers."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from devices.models import Registration, SecurityKeyDevice
from devices.tests.authenticator import SoftwareKey
from devices.tests.helpers import IP, events, new_key, registration_challenge, sign_in
from helpdesk import errors, services
from identity.models import AuditEvent
from identity.services import SecondFactorOutcome

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


def test_bnd08_no_key_at_the_desk_for_a_staff_account(desk_client, second_agent, staff_member, check_for):
    options_url, page_url = _urls(second_agent)
    check_for(second_agent, staff_member)
    assert desk_client.post(options_url, {"label": "Blue key"}).status_code == 403
    assert b"does not apply" in desk_client.get(page_url, follow=True).content


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
