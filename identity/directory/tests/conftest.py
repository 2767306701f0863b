import pytest

# Fixtures of the desk's and the VPN's own tests: the desk's agent, the Auth API through duo_client, RADIUS through
# radclient.
from helpdesk.tests.conftest import check_for, desk_client, staff_member  # noqa: F401
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
