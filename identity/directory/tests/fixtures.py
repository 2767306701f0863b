"""pytest fixtures for a private slapd (see ``slapd.py``); the root ``conftest.py`` makes them everyone's.

- ``slapd``: one server for the whole test session, started on first use. Without slapd or python-ldap a test that
  asks for it is skipped with the reason (it fails under ``REQUIRE_SERVICES=1``).
- ``ldap_directory``: the same server, running (a test may have stopped it), with the site's LDAP settings pointing
  at it (LDAPS, certificate verified); the people a test adds with ``add_person`` are removed after it. Tests change
  only the people they added, so the named people and the bulk keep their state for the others.
- ``directory_person("alice")``: the person of that directory entry in our database, as the sync makes them (source
  ldap, the entry's stable id and DN, no usable local password).
"""

import pytest

from testsupport import REQUIRE_SERVICES

from . import slapd as slapd_module


@pytest.fixture(scope="session")
def slapd():
    if reason := slapd_module.missing():
        if REQUIRE_SERVICES:
            pytest.fail(f"REQUIRE_SERVICES=1 but this test {reason}")
        pytest.skip(reason)
    server = slapd_module.Slapd().start()
    yield server
    server.close()


@pytest.fixture
def ldap_directory(slapd, settings):
    if slapd.process is None:
        slapd.start()
    for name, value in slapd.settings().items():
        setattr(settings, name, value)
    known = {person.dn for person in slapd.people}
    yield slapd
    if slapd.process is None:
        slapd.start()
    for person in [p for p in slapd.people if p.dn not in known]:
        slapd.remove(person.dn)


@pytest.fixture
def directory_person(ldap_directory, db):
    from identity.directory.ldap_source import LDAPReader
    from identity.models import User

    def make(uid: str, **extra) -> User:
        record = LDAPReader().record_for(uid)
        person = User(
            username=uid,
            email=record.email,
            first_name=record.first_name,
            last_name=record.last_name,
            source=User.Source.LDAP,
            directory_id=record.directory_id,
            directory_dn=record.dn,
            **extra,
        )
        person.set_unusable_password()
        person.save()
        return person

    return make
