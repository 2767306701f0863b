import json

import pytest

# Fixtures of the desk's and the VPN's own tests: the desk's agent, the Auth API through duo_client, RADIUS through
# radclient.
from helpdesk.tests.conftest import check_for, desk_client, staff_member  # noqa: F401
from identity.directory import scim_clients
from identity.directory.records import DirectoryRecord
from identity.models import User
from vpn.tests.conftest import duo, integration  # noqa: F401
from vpn.tests.test_radius import radius_client, radius_log, radius_server  # noqa: F401


@pytest.fixture
def record():
    """A directory record for "asmith", with keywords to change any field."""

    def make(**changes):
        values = {
            "source": User.Source.LDAP,
            "directory_id": "guid-asmith",
            "institution_id": "asmith",
            "dn": "uid=asmith,ou=people,dc=example,dc=edu",
            "first_name": "Alice",
            "last_name": "Smith",
            "email": "asmith@example.edu",
            "department": "Radiology",
        }
        return DirectoryRecord(**(values | changes))

    return make


SYNC = {"sync_run": 7}


@pytest.fixture
def scim_client():
    client, token = scim_clients.create_scim_client(name="Entra ID", actor=None)
    client.token = token
    return client


@pytest.fixture
def scim(client, scim_client):
    """Calls the SCIM API as the client with its token: ``scim("POST", "/Users", body)`` -> (status, JSON or None)."""

    def call(method, path, body=None, *, token=None, **extra):
        response = client.generic(
            method,
            "/scim/v2" + path,
            data=json.dumps(body) if body is not None and not isinstance(body, (str, bytes)) else (body or ""),
            content_type="application/scim+json",
            HTTP_AUTHORIZATION=f"Bearer {token or scim_client.token}",
            **extra,
        )
        if response.content:
            assert response["Content-Type"] == "application/scim+json"
            return response.status_code, json.loads(response.content)
        return response.status_code, None

    return call
