"""A passkey cannot answer a passcode: the VPN's preauth lists only devices that can, and says why to a person
whose only device is a passkey."""

import re

import pytest

from devices.tests.helpers import new_key, register
from devices.tests.test_passkeys import new_passkey, register_passkey
from identity.models import AuditEvent
from testsupport import PASSWORD, details_of, wrong_code
from vpn.services.people import WEB_ONLY_MSG

from . import test_radius
from .test_radius import pbkdf2_password, radclient

# The RADIUS tests' transactional database, radclient and server process.
pytestmark = [*test_radius.pytestmark, pytest.mark.usefixtures("relying_party")]
radius_client, radius_log, radius_server = test_radius.radius_client, test_radius.radius_log, test_radius.radius_server

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


# --- RADIUS: the same words in the Reply-Message ---------------------------------------------------------------


def _reply(out: str) -> tuple[str, str]:
    return re.search(r"Received (Access-\w+).*?Reply-Message = \"([^\"]*)\"", out, re.S).groups()


@pytest.fixture
def passkey_only(make_user, approve):
    person = make_user("passkeyonly")
    register_passkey(person, new_passkey())
    approve(person)
    pbkdf2_password(person)
    return person


def test_radius_tells_a_person_with_only_a_passkey_that_passkeys_work_on_the_web_only(
    passkey_only, radius_server, radius_client
):
    out = radclient(
        radius_server, radius_client.secret, {"User-Name": "passkeyonly", "User-Password": f"{PASSWORD},123456"}
    )
    assert _reply(out) == ("Access-Reject", PASSKEYS_WEB_ONLY)
    rejected = AuditEvent.objects.get(action="vpn.radius_rejected", subject=passkey_only)
    assert details_of(rejected) == {"radius_client": "ASA", "reason": "web-only devices"}


def test_radius_says_it_after_the_challenge_too(passkey_only, radius_server, radius_client):
    out = radclient(radius_server, radius_client.secret, {"User-Name": "passkeyonly", "User-Password": PASSWORD})
    assert "Received Access-Challenge" in out
    state = re.search(r"State = (0x[0-9a-f]+)", out).group(1)
    out = radclient(
        radius_server, radius_client.secret, {"User-Name": "passkeyonly", "User-Password": "123456", "State": state}
    )
    assert _reply(out) == ("Access-Reject", PASSKEYS_WEB_ONLY)


def test_radius_a_wrong_password_or_a_wrong_code_beside_a_passkey_hears_only_access_denied(
    make_user, enroll, approve, radius_server, radius_client
):
    """API-04: the words are for someone who gave the right password and has nothing that takes a code."""
    both = make_user("both1")
    app = enroll(both)
    register_passkey(both, new_passkey())
    approve(both)
    pbkdf2_password(both)
    for name, password in (("both1", f"{PASSWORD},{wrong_code(app.app_device)}"), ("nobody", f"{PASSWORD},123456")):
        out = radclient(radius_server, radius_client.secret, {"User-Name": name, "User-Password": password})
        assert _reply(out) == ("Access-Reject", "Access denied.")
