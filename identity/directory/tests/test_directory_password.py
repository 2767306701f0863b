"""The directory password against the real slapd: search then bind over TLS with the certificate verified, several
servers, StartTLS, the directory's answers in plain words (audited), an unreachable directory (no local fallback,
never a 500), and local accounts keeping their local passwords (DIR-01)."""

import pytest
from django.contrib.auth.hashers import make_password
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.utils.html import escape

from identity import errors
from identity.directory import sync
from identity.directory.backends import Answer, check_password
from identity.directory.ldap_password import answer_from_diagnostic
from identity.directory.tests import slapd as tree
from identity.models import AuditEvent, User
from testsupport import PASSWORD, details_of

pytestmark = pytest.mark.django_db
SIGN_IN = "/account/sign-in/"


def sign_in(client, username, password):
    return client.post(SIGN_IN, {"username": username, "password": password})


def actions(person=None):
    events = AuditEvent.objects.order_by("pk")
    if person is not None:
        events = events.filter(subject=person)
    return [event.action for event in events]


def test_dir_01_a_directory_person_signs_in_with_the_directory_password(client, directory_person):
    alice = directory_person("alice")
    response = sign_in(client, "alice", tree.PASSWORD)
    assert response.status_code == 302
    assert actions(alice) == ["signin.password_ok"]


def test_dir_01_a_directory_person_never_uses_a_local_password(client, directory_person):
    alice = directory_person("alice")
    User.objects.filter(pk=alice.pk).update(password=make_password(PASSWORD))  # however it got there
    response = sign_in(client, "alice", PASSWORD)
    assert response.status_code == 200
    assert errors.SIGN_IN_FAILED in response.content.decode()
    assert actions(alice) == ["signin.password_failed"]


def test_dir_01_an_unreachable_directory_never_falls_back_and_is_not_a_500(client, directory_person, ldap_directory):
    alice = directory_person("alice")
    User.objects.filter(pk=alice.pk).update(password=make_password(PASSWORD))
    ldap_directory.stop()
    for password in (tree.PASSWORD, PASSWORD):
        response = sign_in(client, "alice", password)
        assert response.status_code == 200
        assert "We cannot check passwords right now" in response.content.decode()
    # Audited, and nobody's wrong password: the outage throttles no one.
    assert actions(alice) == ["signin.directory_unreachable"] * 2
    assert "SERVER_DOWN" in AuditEvent.objects.filter(action="signin.directory_unreachable").first().details["error"]


def test_dir_01_the_server_certificate_is_verified(directory_person, ldap_directory, settings):
    directory_person("alice")
    other = tree.Slapd(bulk=0)  # a CA that did not sign the server's certificate
    try:
        settings.LDAP_CA_CERT_FILE = str(other.ca_file)
        assert check_password("alice", tree.PASSWORD).answer == Answer.UNREACHABLE
    finally:
        other.close()


def test_dir_01_an_unreadable_ca_file_is_an_unreachable_directory_not_a_500(
    client, directory_person, settings, tmp_path
):
    # libldap refuses the TLS context of a CA file it cannot read with python-ldap's ValueError, not an LDAP error.
    alice = directory_person("alice")
    settings.LDAP_CA_CERT_FILE = str(tmp_path / "moved-away.pem")
    response = sign_in(client, "alice", tree.PASSWORD)
    assert response.status_code == 200
    assert "We cannot check passwords right now" in response.content.decode()
    assert actions(alice) == ["signin.directory_unreachable"]
    error = AuditEvent.objects.get(action="signin.directory_unreachable").details["error"]
    assert "LDAP_CA_CERT_FILE" in error
    # The sync's reader: a failed read, in words, that changes nobody.
    run = sync.sync_directory()
    assert run.status == "failed" and "Reading the directory failed" in run.error_text
    assert "LDAP_CA_CERT_FILE" in run.error_text


def test_directory_e102_an_unreadable_ca_file_fails_the_deploy_check(settings, tmp_path):
    from django.core.checks import registry

    from identity.directory.ldap_checks import check_ldap_ca_file

    assert check_ldap_ca_file in registry.registry.get_checks(include_deployment_checks=True)
    settings.LDAP_SERVER_URIS = ["ldaps://dc1.example.edu"]
    for unreadable in (tmp_path / "missing.pem", tmp_path):  # no such file; a directory
        settings.LDAP_CA_CERT_FILE = str(unreadable)
        assert [problem.id for problem in check_ldap_ca_file(None)] == ["directory.E102"]
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    settings.LDAP_CA_CERT_FILE = str(ca)
    assert check_ldap_ca_file(None) == []
    settings.LDAP_CA_CERT_FILE = ""  # the system's trust store
    assert check_ldap_ca_file(None) == []


def test_dir_01_local_accounts_keep_local_passwords(client, make_user, ldap_directory):
    make_user("breakglass", is_superuser=True, is_staff=True)
    assert sign_in(client, "breakglass", PASSWORD).status_code == 302
    # A local account named like a directory entry is still local: its directory password means nothing here.
    make_user("carol")
    assert check_password("carol", tree.PASSWORD).user is None
    assert check_password("carol", PASSWORD).user is not None


def test_dir_01_local_passwords_work_with_no_directory_configured(client, make_user, settings):
    settings.LDAP_SERVER_URIS = []
    make_user("local1")
    assert sign_in(client, "local1", PASSWORD).status_code == 302


def test_a_wrong_directory_password_is_the_usual_refusal(client, directory_person):
    alice = directory_person("alice")
    response = sign_in(client, "alice", "not it")
    assert errors.SIGN_IN_FAILED in response.content.decode()
    assert actions(alice) == ["signin.password_failed"]
    assert check_password("alice", "").answer == Answer.WRONG_PASSWORD  # an empty password never binds


@pytest.mark.parametrize(
    ("uid", "answer", "text"),
    [
        ("dave", Answer.DISABLED, "disabled in the directory"),  # userAccountControl 514
        ("erin", Answer.LOCKED, "has locked your institution account"),  # ppolicy: accountLocked
        ("frank", Answer.EXPIRED, "password has expired"),  # ppolicy: passwordExpired
        ("grace", Answer.MUST_CHANGE, "must be changed before you can use it"),  # ppolicy: changeAfterReset
    ],
)
def test_the_directory_answers_in_plain_words_and_is_audited(client, directory_person, settings, uid, answer, text):
    settings.LDAP_PASSWORD_CHANGE_AT = "https://password.example.edu"
    person = directory_person(uid)
    assert check_password(uid, tree.PASSWORD).answer == answer
    response = sign_in(client, uid, tree.PASSWORD)
    assert response.status_code == 200
    page = response.content.decode()
    assert text in page
    if answer in (Answer.EXPIRED, Answer.MUST_CHANGE):
        assert "https://password.example.edu" in page
    refused = AuditEvent.objects.filter(action="signin.directory_refused", subject=person)
    assert [details_of(event) for event in refused] == [{"answer": str(answer)}] * 2


@pytest.mark.parametrize(
    ("diagnostic", "answer"),
    [
        ("80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 52e, v4563", "wrong_password"),
        ("80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 533, v4563", "disabled"),
        ("80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 775, v4563", "locked"),
        ("80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 532, v4563", "expired"),
        ("80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 773, v4563", "must_change"),
        ("80090308: LdapErr: DSID-0C09044E, comment: AcceptSecurityContext error, data 701, v4563", "disabled"),
        ("Invalid credentials", None),
    ],
)
def test_active_directory_bind_sub_codes(diagnostic, answer):
    assert answer_from_diagnostic(diagnostic) == answer


def test_servers_are_tried_in_turn(directory_person, ldap_directory, settings):
    directory_person("alice")
    settings.LDAP_SERVER_URIS = [f"ldaps://127.0.0.1:{tree.free_port()}", ldap_directory.ldaps_uri]
    assert check_password("alice", tree.PASSWORD).answer == Answer.OK


def test_start_tls(directory_person, ldap_directory, settings):
    directory_person("alice")
    settings.LDAP_SERVER_URIS = [ldap_directory.ldap_uri]
    settings.LDAP_START_TLS = True
    assert check_password("alice", tree.PASSWORD).answer == Answer.OK


def test_the_entry_must_be_the_same_person(directory_person):
    alice = directory_person("alice")
    User.objects.filter(pk=alice.pk).update(directory_id="00000000-0000-0000-0000-000000000000")
    assert check_password("alice", tree.PASSWORD).user is None


def test_nobody_is_created_at_sign_in(client, ldap_directory):
    # carol is in the directory but not here yet: joiners come from the sync or SCIM.
    assert sign_in(client, "carol", tree.PASSWORD).status_code == 200
    assert not User.objects.filter(username="carol").exists()


def test_directory_e101_plain_ldap_is_refused_by_a_deploy_check_unless_a_lab(settings):
    settings.LDAP_SERVER_URIS = ["ldap://dc1.example.edu"]
    settings.LDAP_START_TLS = False

    def problems():
        try:
            call_command("check", "--deploy", "--fail-level", "ERROR", "--tag", "security")
        except SystemCheckError as error:
            return str(error)
        return ""

    assert "directory.E101" in problems()
    settings.LDAP_START_TLS = True
    assert "directory.E101" not in problems()
    settings.LDAP_START_TLS = False
    settings.LDAP_ALLOW_PLAIN = True
    assert "directory.E101" not in problems()


def test_roles_from_the_directory_are_allow_listed(settings):
    settings.LDAP_ROLE_GROUPS = {tree.HELPDESK_GROUP: "superuser"}
    with pytest.raises(SystemCheckError, match="directory.E003"):
        call_command("check")


def test_a_refused_bind_account_is_an_unreachable_directory(directory_person, settings):
    alice = directory_person("alice")
    settings.LDAP_BIND_PASSWORD = "not the reader's"
    assert check_password("alice", tree.PASSWORD).answer == Answer.UNREACHABLE
    assert AuditEvent.objects.filter(action="signin.directory_unreachable", subject=alice).exists()


def scim_person(uid: str) -> User:
    """``uid`` as a SCIM client provisions them: their id is the SCIM id we gave them, not the entry's entryUUID."""
    import uuid

    from identity.directory import people
    from identity.directory.records import DirectoryRecord

    record = DirectoryRecord(
        source=User.Source.SCIM, directory_id=str(uuid.uuid4()), institution_id=uid, email=f"{uid}@example.edu"
    )
    people.apply_record(record, origin={"scim_client": 1})
    return User.objects.get(username=uid)


def test_dir_01_a_scim_person_signs_in_with_the_ldap_directorys_password(client, ldap_directory):
    # Entra ID provisions alice by SCIM; her password is the Active Directory's that Entra is synced from.
    alice = scim_person("alice")
    assert check_password("alice", tree.PASSWORD).user == alice
    assert check_password("alice", "not it").answer == Answer.WRONG_PASSWORD
    assert sign_in(client, "alice", tree.PASSWORD).status_code == 302
    assert actions(alice)[-1] == "signin.password_ok"


def test_dir_01_a_scim_person_has_no_password_here_without_an_ldap_directory(client, settings):
    settings.LDAP_SERVER_URIS = []
    alice = scim_person("alice")
    User.objects.filter(pk=alice.pk).update(password=make_password(PASSWORD))  # however it got there: never read
    for password in (PASSWORD, tree.PASSWORD):
        assert check_password("alice", password).answer == Answer.NO_PASSWORD
    response = sign_in(client, "alice", PASSWORD)
    assert response.status_code == 200
    page = response.content.decode()
    assert escape(errors.DIRECTORY_NO_PASSWORD.format(help_desk=settings.HELP_DESK_CONTACT)) in page
    assert "Sign in with a passkey" in page
    assert actions(alice).count("signin.no_password_here") == 3


@pytest.mark.django_db
def test_directory_w102_warns_of_scim_clients_without_an_ldap_directory(settings):
    from django.core.checks import registry

    from identity.directory import ldap_checks, scim_clients

    check = ldap_checks.check_scim_without_ldap
    assert check in registry.registry.get_checks(include_deployment_checks=True)
    settings.LDAP_SERVER_URIS = []
    assert check(None, databases=["default"]) == []  # no SCIM client
    client, _ = scim_clients.create_scim_client(name="Entra ID", actor=None)
    assert [problem.id for problem in check(None, databases=["default"])] == ["directory.W102"]
    assert check(None) == []  # not asked to read the database (a deploy check before migrating)
    settings.LDAP_SERVER_URIS = ["ldaps://dc1.example.edu"]
    assert check(None, databases=["default"]) == []
    settings.LDAP_SERVER_URIS = []
    scim_clients.disable_scim_client(client, actor=None)
    assert check(None, databases=["default"]) == []


def test_dir_02_a_deactivated_persons_right_password_is_no_ok(directory_person):
    from identity.directory import people

    alice = directory_person("alice")
    people.deactivate_person(alice, reason="disabled in the directory", origin={})
    checked = check_password("alice", tree.PASSWORD)
    assert checked.user is None and checked.answer == Answer.DISABLED


def test_dir_02_a_deactivated_directory_person_is_throttled_and_never_bound(
    client, directory_person, ldap_directory, settings
):
    from identity.directory import people

    settings.PASSWORD_FAILURES_PER_ID = 3
    alice = directory_person("alice")
    people.deactivate_person(alice, reason="disabled in the directory", origin={})
    ldap_directory.stop()  # a bind now would be audited as an unreachable directory
    inactive = errors.ACCOUNT_INACTIVE.format(help_desk=settings.HELP_DESK_CONTACT)
    for _ in range(3):
        assert inactive in sign_in(client, "alice", tree.PASSWORD).content.decode()
    assert "Too many sign-in attempts" in sign_in(client, "alice", tree.PASSWORD).content.decode()
    assert actions(alice)[-3:] == ["signin.refused_inactive"] * 3
    assert AuditEvent.objects.filter(action="signin.password_throttled").count() == 1
    assert not AuditEvent.objects.filter(action__in=["signin.directory_unreachable", "signin.directory_refused"])


@pytest.mark.parametrize(("minutes", "scheduled"), [("30", True), ("0", False)])
def test_a_directory_that_only_checks_passwords_has_no_scheduled_sync(minutes, scheduled):
    import os
    import subprocess
    import sys

    from django.conf import settings

    code = "import django; django.setup(); from django.conf import settings; "
    code += "print('sync-directory' in settings.CELERY_BEAT_SCHEDULE)"
    env = {**os.environ, "LDAP_SERVER_URIS": "ldaps://dc1.example.edu", "DIRECTORY_SYNC_MINUTES": minutes}
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip() == str(scheduled), result.stderr
