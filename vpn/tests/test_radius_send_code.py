"""A challenge answered with "sms" or "phone" (Duo's Auth Proxy words) at the service: the prompt names what the
person can do, a code goes to the first phone that takes it, and asking never counts as a wrong code (OTP-01)."""

import pytest

from devices.models import OutboundMessage, PhoneDevice
from identity.models import AuditEvent
from testsupport import PASSWORD
from vpn import services

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def client(db):
    client, _ = services.create_radius_client(name="ASA", network="10.0.0.1/32", actor=None)
    return client


def ask(client, person, password, state=None):
    return services.radius_authenticate(client, username=person.username, password=password, state=state, ip="10.0.0.1")


def phone_messages():
    return OutboundMessage.objects.filter(channel__in=("sms", "voice"))


def phone(person, number, *, can_text):
    return PhoneDevice.objects.create(user=person, name="Phone", number=number, can_text=can_text, confirmed=True)


def test_the_prompt_names_only_what_the_person_can_do(client, vpn_person, make_user, approve):
    assert ask(client, vpn_person, PASSWORD).message == "Enter a code from your authenticator app."
    phone(vpn_person, "+16175550122", can_text=True)
    assert ask(client, vpn_person, PASSWORD).message == (
        "Enter a code from your authenticator app, or reply 'sms' for a text or 'phone' for a call."
    )
    desk = make_user("desk")
    phone(desk, "+16175550133", can_text=False)
    approve(desk)
    assert ask(client, desk, PASSWORD).message == "Reply 'phone' for a call, then enter the code you get."


def test_a_landline_takes_no_text_and_the_first_phone_that_can_is_called(client, make_user, approve, settings):
    settings.LOCKOUT_THRESHOLD = 1  # a single counted failure would lock
    person = make_user("landline")
    phone(person, "+16175550133", can_text=False)
    approve(person)
    state = ask(client, person, PASSWORD).state
    answer = ask(client, person, "sms", state)
    assert (answer.outcome, answer.message) == (
        "challenge",
        "No phone of yours takes texts here. Reply 'phone' for a call, then enter the code you get.",
    )
    assert not phone_messages()
    answer = ask(client, person, "Phone1", answer.state)
    assert (answer.outcome, answer.message) == (
        "challenge",
        "We are calling +1********33 to read you a code. Enter it here.",
    )
    assert list(phone_messages().values_list("channel", "recipient")) == [("voice", "+16175550133")]
    person.refresh_from_db()
    assert person.second_factor_failures == 0 and not person.is_locked
    assert [e.details["sent"] for e in AuditEvent.objects.filter(action="vpn.code_requested").order_by("id")] == [
        False,
        True,
    ]


def test_api04_a_person_without_vpn_access_hears_the_same_and_is_sent_nothing(client, make_user, approve):
    allowed, waiting = make_user("allowed"), make_user("waiting")
    phone(allowed, "+16175550144", can_text=True)
    phone(waiting, "+16175550144", can_text=True)
    approve(allowed)
    answers = []
    for person in (allowed, waiting):
        first = ask(client, person, PASSWORD)
        answers.append((first.outcome, first.message, ask(client, person, "sms", first.state).message))
    assert answers[0] == answers[1]
    assert list(phone_messages().values_list("recipient", flat=True)) == ["+16175550144"]


@pytest.mark.parametrize("mode", ["password", "code_only"])
def test_api04_sms_typed_in_the_field_sounds_the_same_without_access_and_counts_nothing(
    client, make_user, approve, settings, mode
):
    """``password,sms`` and, in ``code_only`` mode, ``sms`` alone: the same answer for a person with VPN access and
    one without; only the first is texted, and neither counts a wrong code (a threshold of one would lock)."""
    settings.RADIUS_PASSWORD_MODE = mode
    settings.LOCKOUT_THRESHOLD = 1
    allowed, waiting = make_user("allowed"), make_user("waiting")
    phone(allowed, "+16175550144", can_text=True)
    phone(waiting, "+16175550144", can_text=True)
    approve(allowed)
    typed = f"{PASSWORD},sms" if mode == "password" else "sms"
    answers = [ask(client, person, typed) for person in (allowed, waiting)]
    assert [(a.outcome, a.message) for a in answers] == 2 * [
        ("challenge" if mode == "password" else "reject", "We are texting a code to +1********44. Enter it here.")
    ]
    assert list(phone_messages().values_list("recipient", flat=True)) == ["+16175550144"]
    for person in (allowed, waiting):
        person.refresh_from_db()
        assert person.second_factor_failures == 0 and not person.is_locked
