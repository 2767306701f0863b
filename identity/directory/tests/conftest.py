import pytest

from identity.directory.records import DirectoryRecord
from identity.models import User


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
