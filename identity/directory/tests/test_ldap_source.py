"""The sync's reader against the real slapd: paged search, the attribute map, disabled people, groups to roles and
VPN access, the group filter, and a clear error on any failure partway (DIR-03's precondition)."""

import pytest

from identity.directory.ldap_source import DirectoryReadError, LDAPReader
from identity.directory.tests import slapd as tree

pytestmark = pytest.mark.django_db

ROLE_GROUPS = {tree.HELPDESK_GROUP: "Help desk", tree.AUDITORS_GROUP: "Auditor"}


@pytest.fixture
def mapped(ldap_directory, settings):
    settings.LDAP_ROLE_GROUPS = ROLE_GROUPS
    settings.LDAP_VPN_GROUP = tree.VPN_GROUP
    return ldap_directory


def test_reads_everyone_in_pages(mapped):
    reader = LDAPReader(page_size=40)
    records = list(reader.records())
    assert {r.institution_id for r in records} == {p.uid for p in mapped.people}
    assert len(records) > 2 * tree.SIZE_LIMIT  # more than one search may return
    assert reader.pages == -(-len(records) // 40)  # every page was asked for and followed
    assert reader.skipped == []


def test_maps_attributes_groups_and_vpn(mapped):
    records = {r.institution_id: r for r in LDAPReader().records()}
    alice = records["alice"]
    assert (alice.first_name, alice.last_name, alice.email) == ("Alice", "Able", "alice@example.edu")
    assert (alice.department, alice.mobile) == ("Cardiology", "+16175550101")
    assert alice.dn == f"uid=alice,{tree.PEOPLE}"
    assert len(alice.directory_id) == 36  # slapd's entryUUID
    assert alice.source == "ldap"
    assert alice.active and alice.roles == {"Help desk"} and alice.vpn_access is True
    assert records["bob"].roles == {"Auditor"} and records["bob"].vpn_access is False
    assert records["carol"].roles == frozenset()
    assert records["dave"].active is False  # userAccountControl 514: ACCOUNTDISABLE
    assert len({r.directory_id for r in records.values()}) == len(records)


def test_roles_and_vpn_are_none_when_the_directory_does_not_manage_them(ldap_directory):
    alice = LDAPReader().record_for("alice")
    assert alice.roles is None and alice.vpn_access is None


def test_a_configured_attribute_marks_people_disabled(ldap_directory, settings):
    settings.LDAP_DISABLED_ATTRIBUTE = "pwdAccountLockedTime"  # OpenLDAP: present means disabled
    records = {r.institution_id: r for r in LDAPReader().records()}
    assert records["erin"].active is False
    assert records["dave"].active is True
    settings.LDAP_DISABLED_ATTRIBUTE = "departmentNumber"
    settings.LDAP_DISABLED_VALUES = ["nursing"]
    assert {r.institution_id for r in LDAPReader().records() if not r.active} == {"frank", "grace"}


def test_only_members_of_the_synced_groups(ldap_directory, settings):
    settings.LDAP_SYNC_GROUPS = [tree.HELPDESK_GROUP, tree.AUDITORS_GROUP]
    assert {r.institution_id for r in LDAPReader().records()} == {"alice", "bob"}


def test_several_bases(ldap_directory, settings):
    settings.LDAP_SYNC_BASES = [f"uid=alice,{tree.PEOPLE}", f"uid=bob,{tree.PEOPLE}"]
    reader = LDAPReader()
    assert [r.institution_id for r in reader.records()] == ["alice", "bob"]
    assert reader.pages == 2


def test_one_person(ldap_directory):
    reader = LDAPReader()
    assert reader.record_for("carol").email == "carol@example.edu"
    assert reader.record_for("nobody") is None
    assert reader.record_for("*") is None  # a filter character is a character


def test_follows_changes(ldap_directory):
    person = ldap_directory.add_person(tree.Person("yann", "Yann", "Young", "yann@example.edu"))
    ldap_directory.modify(person.dn, mail="y.young@example.edu")
    assert LDAPReader().record_for("yann").email == "y.young@example.edu"
    ldap_directory.remove(person.dn)
    assert LDAPReader().record_for("yann") is None


def test_directory_down_is_an_error(ldap_directory):
    ldap_directory.stop()
    with pytest.raises(DirectoryReadError):
        list(LDAPReader().records())


def test_failure_between_pages_is_an_error(ldap_directory):
    records = LDAPReader(page_size=40).records()
    next(records)
    ldap_directory.stop()
    with pytest.raises(DirectoryReadError):
        list(records)


def test_a_limit_the_server_enforces_is_an_error(ldap_directory, settings):
    settings.LDAP_SYNC_BASES = [tree.PEOPLE]
    with pytest.raises(DirectoryReadError, match="(?i)limit"):
        list(LDAPReader(page_size=tree.SIZE_LIMIT + 50).records())


def test_wrong_bind_password_is_an_error(ldap_directory, settings):
    settings.LDAP_BIND_PASSWORD = "wrong"
    with pytest.raises(DirectoryReadError):
        list(LDAPReader().records())


def test_attribute_names_match_whatever_their_case(mapped, settings):
    """LDAP's attribute names are case-insensitive: settings spelled otherwise than the server's names read the same
    people, entries with and without an optional attribute alike (the reader learns each set of names once)."""
    expected = {r.institution_id: r for r in LDAPReader().records()}
    settings.LDAP_ATTRIBUTES = {field: name.upper() for field, name in settings.LDAP_ATTRIBUTES.items()}
    settings.LDAP_DISABLED_ATTRIBUTE = "USERACCOUNTCONTROL"
    settings.LDAP_MEMBER_OF_ATTRIBUTE = "MEMBEROF"
    shouted = {r.institution_id: r for r in LDAPReader().records()}
    assert shouted == expected
    assert shouted["alice"].mobile and not all(r.mobile for r in shouted.values())
    assert shouted["dave"].active is False and shouted["alice"].roles == {"Help desk"}
