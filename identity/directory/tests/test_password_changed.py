"""A password changed or reset in the directory ends the person's open sessions at the next sync, against the real
slapd and real signed-in browsers (Django's test client through the sign-in views). Django's own session hash cannot
see the change: it covers the local password, which a directory person never has.

Both flavours of the stamp: OpenLDAP's ``pwdChangedTime`` (the ppolicy overlay writes it when the password changes)
and Active Directory's ``pwdLastSet`` (the test schema's AD-like attribute, changed as a domain controller would)."""

import time

import pytest
from django.test import Client

from identity.directory import sync
from identity.directory.ldap_source import NO_STAMP
from identity.directory.models import DirectorySyncRun
from identity.directory.tests import slapd as tree
from identity.models import AuditEvent, User
from testsupport import PASSWORD

pytestmark = pytest.mark.django_db

AD_STAMP, AD_NEW_STAMP = "133500000000000000", "133500864000000000"  # FILETIME: a day apart


def stamp_of(directory, dn: str, attribute: str) -> str:
    import ldap

    conn = directory.connection()
    try:
        [(_, found)] = conn.search_s(dn, ldap.SCOPE_BASE, attrlist=[attribute])
    finally:
        conn.unbind_s()
    return found[attribute][0].decode() if attribute in found else ""


class OpenLDAP:
    attribute = "pwdChangedTime"

    def person(self, uid: str) -> tree.Person:
        return tree.Person(uid, uid.capitalize(), "Tester", f"{uid}@example.edu", "Medicine", password=PASSWORD)

    def change_password(self, directory, dn: str) -> None:
        # pwdChangedTime counts seconds: the change must not fall in the second of the one before.
        before = stamp_of(directory, dn, self.attribute)
        while time.strftime("%Y%m%d%H%M%SZ", time.gmtime()) <= before:
            time.sleep(0.05)
        # The person changes it (to the same words, so the test signs in with it again): an administrator's reset
        # moves the stamp as well, and leaves pwdReset, which the sign-in refuses until the person changes it.
        import ldap

        conn = directory.connection(dn, PASSWORD)
        try:
            conn.modify_s(dn, [(ldap.MOD_REPLACE, "userPassword", [PASSWORD.encode()])])
        finally:
            conn.unbind_s()


class ActiveDirectory:
    attribute = "pwdLastSet"

    def person(self, uid: str) -> tree.Person:
        person = OpenLDAP().person(uid)
        person.extra = {"pwdLastSet": [AD_STAMP]}
        return person

    def change_password(self, directory, dn: str) -> None:
        directory.modify(dn, pwdLastSet=AD_NEW_STAMP)


@pytest.fixture(params=[OpenLDAP, ActiveDirectory], ids=["openldap", "active_directory"])
def flavour(request, settings):
    settings.LDAP_ATTRIBUTES = {**settings.LDAP_ATTRIBUTES, "password_changed": request.param.attribute}
    return request.param()


@pytest.fixture
def signed_in(ldap_directory, flavour, enroll, sign_in):
    """Two directory people, synced, each with an app and a browser signed in through the real views."""
    for uid in ("pat", "quinn"):
        ldap_directory.add_person(flavour.person(uid))
    sync.sync_directory()
    browsers = {}
    for uid in ("pat", "quinn"):
        person = User.objects.get(username=uid)
        enroll(person)
        browsers[uid] = Client()
        sign_in(browsers[uid], person)
        assert browsers[uid].get("/devices/").status_code == 200
    return browsers


def signed_out(browser) -> bool:
    response = browser.get("/devices/")
    if response.status_code == 200:
        return False
    assert response.status_code == 302 and response.url.startswith("/account/sign-in/")
    return True


def test_a_password_changed_in_the_directory_ends_that_persons_sessions_at_the_next_sync(
    ldap_directory, flavour, signed_in, sign_in, enroll
):
    pat = User.objects.get(username="pat")
    stored = pat.directory_password_changed
    # ppolicy writes pwdChangedTime at the first change of the password (the default policy sets no age), so the
    # OpenLDAP person starts with none: remembered as such.
    assert stored == (stamp_of(ldap_directory, f"uid=pat,{tree.PEOPLE}", flavour.attribute) or NO_STAMP)
    flavour.change_password(ldap_directory, f"uid=pat,{tree.PEOPLE}")

    run = sync.sync_directory()

    assert run.status == DirectorySyncRun.Status.APPLIED and run.updated == 1
    assert signed_out(signed_in["pat"])
    assert not signed_out(signed_in["quinn"])
    pat.refresh_from_db()
    assert pat.directory_password_changed == stamp_of(ldap_directory, f"uid=pat,{tree.PEOPLE}", flavour.attribute)
    assert pat.directory_password_changed not in ("", stored)
    event = AuditEvent.objects.filter(action="directory.password_changed").get()
    assert event.subject == pat and event.details == {"sync_run": run.pk, "sessions_ended": 1}
    assert pat.is_active  # a new password is no leaver

    # Signed in again (with a second app: the first one's code was just used): a rerun with nothing changed ends
    # nothing and writes nothing but its run.
    again = Client()
    sign_in(again, pat, enroll(pat).app_device)
    events = AuditEvent.objects.count()
    run = sync.sync_directory()
    assert run.unchanged == run.read and run.updated == 0
    assert AuditEvent.objects.count() == events
    assert not signed_out(again) and not signed_out(signed_in["quinn"])


def test_a_first_stamp_is_only_stored_and_an_entry_without_one_is_remembered(
    ldap_directory, flavour, signed_in, settings
):
    """People synced while the setting was off: the first run with it stores their stamps and ends nothing. An
    entry with no stamp at all is stored as such, so its first password change ends its sessions."""
    User.objects.filter(username__in=["pat", "quinn"]).update(directory_password_changed="")
    quinn = f"uid=quinn,{tree.PEOPLE}"
    if flavour.attribute == "pwdLastSet":  # ppolicy's own attribute cannot be taken away
        ldap_directory.modify(quinn, pwdLastSet=None)

    run = sync.sync_directory()

    assert run.updated == 0 and not AuditEvent.objects.filter(action="directory.password_changed").exists()
    assert not signed_out(signed_in["pat"]) and not signed_out(signed_in["quinn"])
    assert User.objects.get(username="pat").directory_password_changed != ""
    if flavour.attribute == "pwdLastSet":
        assert User.objects.get(username="quinn").directory_password_changed == NO_STAMP
        ldap_directory.modify(quinn, pwdLastSet=AD_NEW_STAMP)
        assert sync.sync_directory().updated == 1
        assert signed_out(signed_in["quinn"]) and not signed_out(signed_in["pat"])


def test_with_the_setting_empty_a_changed_stamp_ends_nothing(ldap_directory, flavour, signed_in, settings):
    settings.LDAP_ATTRIBUTES = {**settings.LDAP_ATTRIBUTES, "password_changed": ""}
    flavour.change_password(ldap_directory, f"uid=pat,{tree.PEOPLE}")
    run = sync.sync_directory()
    assert run.updated == 0 and not signed_out(signed_in["pat"])


def test_the_one_person_sync_ends_the_sessions_too(ldap_directory, flavour, signed_in):
    flavour.change_password(ldap_directory, f"uid=pat,{tree.PEOPLE}")
    run = sync.sync_directory(person="pat")
    assert run.updated == 1 and signed_out(signed_in["pat"]) and not signed_out(signed_in["quinn"])


def test_a_dry_run_ends_nothing(ldap_directory, flavour, signed_in):
    flavour.change_password(ldap_directory, f"uid=pat,{tree.PEOPLE}")
    run = sync.sync_directory(dry_run=True)
    assert run.updated == 1 and not signed_out(signed_in["pat"])
    assert sync.sync_directory().updated == 1 and signed_out(signed_in["pat"])
