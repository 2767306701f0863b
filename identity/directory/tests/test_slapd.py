"""The private slapd the directory tests use is what they say it is: TLS with a verified certificate, a size limit
that makes a reader page, and the administrator's helpers changing the real tree."""

import pytest

from identity.directory.tests import slapd as tree


def test_the_server_certificate_is_verified(ldap_directory, tmp_path):
    import ldap

    ldap_directory.connection().unbind_s()  # with the CA that signed it
    other = tree.Slapd(bulk=0)  # another CA
    try:
        conn = ldap.initialize(ldap_directory.ldaps_uri)
        conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(other.ca_file))
        conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
        conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        with pytest.raises(ldap.SERVER_DOWN):
            conn.simple_bind_s(tree.READER_DN, ldap_directory.reader_password)
    finally:
        other.close()


def test_an_unpaged_search_of_everyone_hits_the_size_limit(ldap_directory):
    import ldap

    conn = ldap_directory.connection(tree.READER_DN, ldap_directory.reader_password)
    with pytest.raises(ldap.SIZELIMIT_EXCEEDED):
        conn.search_s(tree.PEOPLE, ldap.SCOPE_ONELEVEL, "(objectClass=person)", ["uid"])
    assert len(ldap_directory.people) > 2 * tree.SIZE_LIMIT


def test_helpers_change_the_tree_and_memberof_follows(ldap_directory):
    import ldap

    person = ldap_directory.add_person(tree.Person("zoe", "Zoe", "Zed", "zoe@example.edu", groups=(tree.STAFF_GROUP,)))
    ldap_directory.add_to_group(person.dn, tree.VPN_GROUP)
    ldap_directory.modify(person.dn, mail="zoe.zed@example.edu")
    ldap_directory.disable(person.dn)
    conn = ldap_directory.connection(tree.READER_DN, ldap_directory.reader_password)
    [(_, attributes)] = conn.search_s(person.dn, ldap.SCOPE_BASE, attrlist=["mail", "memberOf", "userAccountControl"])
    assert attributes["mail"] == [b"zoe.zed@example.edu"]
    assert set(attributes["memberOf"]) == {tree.STAFF_GROUP.encode(), tree.VPN_GROUP.encode()}
    assert attributes["userAccountControl"] == [b"514"]
    ldap_directory.remove(person.dn)
    assert conn.search_s(tree.PEOPLE, ldap.SCOPE_ONELEVEL, "(uid=zoe)") == []
