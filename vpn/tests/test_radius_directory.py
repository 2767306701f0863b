"""RADIUS password mode with a directory password, asked by Debian's ``radclient`` of the real server process, which
binds to the real slapd (DIR-01): the directory password and a code are accepted, a local hash never is, and the
directory's answers reach the VPN client as the Reply-Message."""

import pytest
from django.contrib.auth.hashers import make_password

from identity.directory.tests import slapd as tree
from identity.models import AuditEvent, User
from testsupport import PASSWORD, details_of, fresh_code

from . import test_radius
from .test_radius import app_device, radclient

# The RADIUS tests' services, transactional database and server process.
pytestmark = test_radius.pytestmark
radius_client, radius_log, radius_server = test_radius.radius_client, test_radius.radius_log, test_radius.radius_server


@pytest.fixture
def ldap_env(ldap_directory, monkeypatch):
    """The server process reads its settings from the environment: point it at the test's slapd."""
    for name, value in ldap_directory.settings().items():
        monkeypatch.setenv(
            name,
            ",".join(value)
            if isinstance(value, list)
            else str(value).lower()
            if isinstance(value, bool)
            else str(value),
        )
    return ldap_directory


@pytest.fixture
def alice(ldap_env, directory_person, enroll, approve):
    person = directory_person("alice")
    enroll(person)
    approve(person)
    User.objects.filter(pk=person.pk).update(password=make_password(PASSWORD))  # a stray local hash is never used
    return person


def test_dir_01_radius_accepts_the_directory_password_and_a_code(alice, radius_server, radius_client):
    code = fresh_code(app_device(alice))
    out = radclient(radius_server, radius_client.secret, {"User-Name": "alice", "User-Password": f"{PASSWORD},{code}"})
    assert "Received Access-Reject" in out
    out = radclient(
        radius_server, radius_client.secret, {"User-Name": "alice", "User-Password": f"{tree.PASSWORD},{code}"}
    )
    assert "Received Access-Accept" in out


def test_radius_says_what_the_directory_said(ldap_env, directory_person, radius_server, radius_client):
    erin = directory_person("erin")
    out = radclient(radius_server, radius_client.secret, {"User-Name": "erin", "User-Password": tree.PASSWORD})
    assert "Received Access-Reject" in out and "has locked your institution account" in out
    refused = AuditEvent.objects.get(action="signin.directory_refused", subject=erin)
    assert (details_of(refused), refused.ip) == ({"answer": "locked", "entry_point": "radius"}, "127.0.0.1")


def test_dir_01_radius_with_the_directory_down_refuses_and_blames_nobody(ldap_env, alice, radius_server, radius_client):
    ldap_env.stop()
    code = fresh_code(app_device(alice))
    for password in (tree.PASSWORD, PASSWORD):
        out = radclient(
            radius_server, radius_client.secret, {"User-Name": "alice", "User-Password": f"{password},{code}"}
        )
        assert "Received Access-Reject" in out and "We cannot check passwords right now" in out
    events = AuditEvent.objects.filter(subject=alice, action__startswith="signin.")
    assert [(e.action, e.ip, e.details["entry_point"]) for e in events] == [
        ("signin.directory_unreachable", "127.0.0.1", "radius")
    ] * 2


def failed_binds(directory, dn: str) -> int:
    """How many failed binds the directory's password policy holds against ``dn`` (ppolicy's pwdFailureTime)."""
    import ldap

    conn = directory.connection()
    try:
        ((_, entry),) = conn.search_s(dn, ldap.SCOPE_BASE, attrlist=["pwdFailureTime"])
    finally:
        conn.unbind_s()
    return len(entry.get("pwdFailureTime", []))


def test_dir_01_radius_binds_once_for_a_wrong_password_with_a_code(
    ldap_env, directory_person, enroll, approve, radius_server, radius_client
):
    """``password,123456`` reads two ways (a password and a code, or all a password); for a directory person each
    reading is a bind, and a wrong bind counts toward the directory's lockout. One attempt, one bind."""
    entry = ldap_env.add_person(tree.Person("yves", "Yves", "Young", "yves@example.edu"))
    yves = directory_person("yves")
    enroll(yves)
    approve(yves)
    code = fresh_code(app_device(yves))
    out = radclient(radius_server, radius_client.secret, {"User-Name": "yves", "User-Password": f"not it,{code}"})
    assert "Received Access-Reject" in out
    assert failed_binds(ldap_env, entry.dn) == 1
    assert AuditEvent.objects.filter(action="signin.password_failed", subject=yves).count() == 1


def test_radius_stops_at_the_directorys_first_answer(ldap_env, directory_person, radius_server, radius_client):
    """A directory that refuses (Erin is locked there) is asked once, and its answer audited once."""
    erin = directory_person("erin")
    out = radclient(
        radius_server, radius_client.secret, {"User-Name": "erin", "User-Password": f"{tree.PASSWORD},123456"}
    )
    assert "Received Access-Reject" in out and "has locked your institution account" in out
    assert AuditEvent.objects.filter(action="signin.directory_refused", subject=erin).count() == 1
