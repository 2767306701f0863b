import duo_client
import pytest

from identity import services as identity_services
from vpn import services


@pytest.fixture
def staff(make_user):
    return make_user("helpdesk1", is_staff=True)


@pytest.fixture
def approve(staff):
    def do(person):
        return identity_services.approve_vpn_access(person, actor=staff, reason="ticket 1")

    return do


@pytest.fixture
def integration(db):
    integration, secret = services.create_integration(name="Cisco ASA", actor=None)
    integration.secret = secret
    return integration


@pytest.fixture
def duo(live_server, integration):
    """The unmodified ``duo_client`` package, pointed at the live server over plain HTTP."""

    def make(ikey=None, skey=None, **kwargs):
        host, port = live_server.url.removeprefix("http://").split(":")
        return duo_client.Auth(
            ikey=ikey or integration.integration_key,
            skey=skey or integration.secret,
            host=host,
            port=int(port),
            ca_certs="HTTP",
            **kwargs,
        )

    return make


@pytest.fixture
def vpn_person(make_user, enroll, approve):
    """An enrolled person (an authenticator app) with approved VPN access."""
    person = make_user("vpnuser")
    enroll(person)
    approve(person)
    person.refresh_from_db()
    return person
