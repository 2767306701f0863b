"""Status-Server (RFC 5997), asked by Debian's ``radclient ... status`` of the real server process: a known client's
signed probe gets an Access-Accept signed with a Message-Authenticator, and nothing else happens."""

import pytest

from identity.models import AuditEvent, User
from testsupport import PASSWORD, fresh_code
from vpn import services
from vpn.tests import test_radius
from vpn.tests.test_radius import app_device, assert_signed_first, radclient

# The RADIUS tests' client, person and server process.
radius_client, radius_log, radius_person, radius_server = (
    test_radius.radius_client,
    test_radius.radius_log,
    test_radius.radius_person,
    test_radius.radius_server,
)
limit_proxy_state = test_radius.limit_proxy_state

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def status(port, secret, attributes=None, **options) -> str:
    return radclient(port, secret, attributes or {}, command="status", **options)


def people_and_audit() -> tuple:
    """What a probe must leave as it was: every person's row and the audit log."""
    return list(User.objects.order_by("pk").values()), AuditEvent.objects.count()


def test_api_08_a_known_clients_status_server_gets_an_access_accept_signed_first(radius_server, radius_client):
    before = people_and_audit()
    out = status(radius_server, radius_client.secret)
    assert "Sent Status-Server" in out and "Received Access-Accept" in out, out
    assert_signed_first(out)
    out = status(radius_server, radius_client.secret)  # again: each probe is answered
    assert "Received Access-Accept" in out, out
    assert people_and_audit() == before


def test_a_status_server_naming_a_person_touches_nobody(radius_server, radius_client, radius_person):
    """A probe is not a sign-in, whatever it carries: no check, no audit event, no failure counted."""
    before = people_and_audit()
    code = fresh_code(app_device(radius_person))
    out = status(radius_server, radius_client.secret, {"User-Name": "vpnuser", "User-Password": f"{PASSWORD},{code}"})
    assert "Received Access-Accept" in out, out
    assert people_and_audit() == before


def test_api_08_a_status_server_without_message_authenticator_is_dropped(
    radius_server, radius_client, limit_proxy_state
):
    """RFC 5997 requires it, even of a client allowed to send Access-Requests without one."""
    out = status(
        radius_server, radius_client.secret, {"NAS-Identifier": "probe"}, message_authenticator=False, timeout=1
    )
    assert "Sent Status-Server" in out and "Received" not in out and "No reply" in out, out
    out = status(radius_server, radius_client.secret, {"NAS-Identifier": "probe"})
    assert "Received Access-Accept" in out, out


def test_api_08_a_status_server_with_a_wrong_secret_gets_no_answer(radius_server, radius_client):
    out = status(radius_server, "not-the-secret", timeout=1)
    assert "Received" not in out and "No reply" in out, out


def test_api_03_a_status_server_from_a_disabled_client_gets_no_answer(radius_server, radius_client):
    services.update_radius_client(radius_client, name="ASA", network="127.0.0.1/32", enabled=False, actor=None)
    out = status(radius_server, radius_client.secret, timeout=1)
    assert "Received" not in out and "No reply" in out, out
