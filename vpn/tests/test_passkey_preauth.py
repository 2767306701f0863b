"""A passkey cannot answer a passcode: the VPN's preauth lists only devices that can, and says why to a person
whose only device is a passkey."""

import pytest

from devices.tests.helpers import new_key, register
from devices.tests.test_passkeys import new_passkey, register_passkey
from identity.models import AuditEvent
from vpn.services.people import WEB_ONLY_MSG

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("relying_party")]

PASSKEYS_WEB_ONLY = "Use your authenticator app or a text: passkeys work on the web only."


def test_preauth_tells_a_person_with_only_a_passkey_to_use_the_app_or_a_text(duo, make_user, approve):
    person = make_user("passkeyonly")
    register_passkey(person, new_passkey())
    approve(person)
    answer = duo().preauth(username="passkeyonly")
    assert answer["result"] == "enroll"
    assert answer["status_msg"] == PASSKEYS_WEB_ONLY == WEB_ONLY_MSG["passkey"]
    assert "devices" not in answer
    assert AuditEvent.objects.filter(action="vpn.preauth", subject=person, details__result="enroll").exists()


def test_preauth_lists_only_the_devices_that_take_a_passcode_beside_a_passkey(duo, make_user, approve, enroll):
    person = make_user("both1")
    enroll(person, number="+16175550177")
    register_passkey(person, new_passkey())
    approve(person)
    answer = duo().preauth(username="both1")
    assert answer["result"] == "auth"
    [device] = answer["devices"]
    assert device["capabilities"] == ["mobile_otp"] and "passkey" not in device["display_name"].lower()


def test_preauth_says_the_same_of_a_security_key(duo, make_user, approve):
    person = make_user("keyonly")
    register(person, new_key())
    approve(person)
    assert duo().preauth(username="keyonly")["status_msg"] == (
        "Use your authenticator app or a text: security keys work on the web only."
    )
