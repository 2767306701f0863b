"""A VPN retransmits an Access-Request it got no answer to in time; the copy is answered with the first reply and
never checked again (RFC 5080 §2.2.2), so a slow answer cannot turn an accepted code into a counted failure
(OTP-01) or a reject."""

import socket

import pytest
from pyrad import packet

from identity.models import AuditEvent
from testsupport import PASSWORD, fresh_code
from vpn.radius.server import DICTIONARY
from vpn.tests.test_radius import app_device, radius_client, radius_log, radius_person, radius_server  # noqa: F401

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def access_request(secret: str, username: str, password: str) -> bytes:
    request = packet.AuthPacket(code=packet.AccessRequest, secret=secret.encode(), dict=DICTIONARY)
    request["User-Name"] = username
    request["User-Password"] = request.PwCrypt(password)
    request.add_message_authenticator()
    return request.RequestPacket()


def test_otp01_a_retransmitted_request_gets_the_first_answer_and_is_not_checked_twice(
    radius_server,  # noqa: F811
    radius_client,  # noqa: F811
    radius_person,  # noqa: F811
):
    raw = access_request(radius_client.secret, "vpnuser", f"{PASSWORD},{fresh_code(app_device(radius_person))}")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        sock.connect(("127.0.0.1", radius_server))
        sock.send(raw)
        first = sock.recv(4096)
        sock.send(raw)  # the same packet again, from the same port: a retransmission
        second = sock.recv(4096)
    assert first[0] == packet.AccessAccept
    assert second == first
    radius_person.refresh_from_db()
    assert radius_person.second_factor_failures == 0
    assert AuditEvent.objects.filter(action="signin.second_factor_ok", subject=radius_person).count() == 1
