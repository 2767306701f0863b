"""A leaver loses every access at once (DIR-02), through the real doors: the web sign-in, an open session, the
Auth API (the unmodified duo_client against the live server) and RADIUS (Debian's radclient against the server
process). Devices are kept DIRECTORY_RETAIN_DAYS, then retired."""

import pytest

from devices import bypass_codes
from devices import services as device_services
from devices.models import ActivationLink, AuthenticatorAppDevice, BypassCodeDevice, Registration
from identity import errors
from identity.directory import people
from identity.models import AuditEvent, User
from testsupport import PASSWORD, totp_for
from vpn.tests.test_radius import radclient

from . import slapd
from .conftest import SYNC

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def leaver(record, enroll, make_user, ldap_directory, settings):
    """A directory person with an app, VPN access from the directory's group, a pending recovery link and bypass
    codes from the desk."""
    people.apply_record(record(vpn_access=True), origin=SYNC)
    person = User.objects.get(username="asmith")
    # The directory checks the password (DIR-01): asmith in the test's slapd, the same person by the stable id the
    # record carries (kept in employeeNumber here), so a session opens before the person leaves.
    settings.LDAP_ATTRIBUTES = {**settings.LDAP_ATTRIBUTES, "directory_id": "employeeNumber"}
    ldap_directory.add_person(
        slapd.Person("asmith", "Alice", "Smith", password=PASSWORD, extra={"employeeNumber": [person.directory_id]})
    )
    enroll(person)
    desk = make_user("desk1", is_staff=True)
    device_services.send_recovery_link(person, actor=desk)
    bypass_codes.issue_bypass_codes(person, actor=desk, count=2, valid_minutes=60)
    return person


def test_dir_02_a_leaver_is_refused_everywhere_at_once_and_nothing_is_deleted(
    leaver,
    record,
    client,
    sign_in,
    duo,
    radius_client,
    settings,
    request,
):
    settings.RADIUS_PASSWORD_MODE = "code_only"
    radius = request.getfixturevalue("radius_server")
    app = leaver.registrations.get().app_device
    sign_in(client, leaver)
    assert client.get("/devices/").status_code == 200
    # (A different ipaddr in each request: the same request signed twice in one second is a replay, API-02.)
    assert duo().preauth(username="asmith", ipaddr="10.0.0.1")["result"] == "auth"
    assert "Received Access-Accept" in radclient(
        radius, radius_client.secret, {"User-Name": "asmith", "User-Password": good_code(app)}
    )

    assert people.apply_record(record(active=False), origin=SYNC) == "deactivated"

    # The open session ends: its next request is sent to sign in.
    response = client.get("/devices/")
    assert response.status_code == 302 and response.url.startswith("/account/sign-in/")
    # The web sign-in says why.
    response = client.post("/account/sign-in/", {"username": "asmith", "password": PASSWORD})
    assert response.status_code == 200
    assert errors.ACCOUNT_INACTIVE.format(help_desk=settings.HELP_DESK_CONTACT) in response.content.decode()
    assert AuditEvent.objects.filter(subject=leaver, action="signin.refused_inactive").exists()
    # Both VPN doors deny, even with a good code.
    assert duo().preauth(username="asmith", ipaddr="10.0.0.2")["result"] == "deny"
    answer = duo().auth(factor="passcode", username="asmith", passcode=good_code(app))
    assert answer["result"] == "deny"
    out = radclient(radius, radius_client.secret, {"User-Name": "asmith", "User-Password": good_code(app)})
    assert "Received Access-Reject" in out
    # Links and bypass codes are void; VPN access is revoked.
    assert not ActivationLink.objects.filter(user=leaver, consumed_at=None, revoked_at=None).exists()
    assert not BypassCodeDevice.objects.filter(user=leaver, confirmed=True).exists()
    leaver.refresh_from_db()
    assert leaver.vpn_access == User.VpnAccess.REVOKED and not leaver.is_active
    # Audited with the sync run; nothing deleted.
    (event,) = AuditEvent.objects.filter(subject=leaver, action="directory.person_deactivated")
    assert event.details["sync_run"] == 7 and event.details["reason"] == "disabled in the directory"
    assert event.details["sessions_ended"] == 1 and event.details["links_revoked"] == 1
    assert event.details["bypass_sets_voided"] == 1 and event.details["vpn_access_was"] == "approved"
    assert AuditEvent.objects.filter(subject=leaver, action="vpn_access.revoked", details__sync_run=7).exists()
    assert Registration.objects.get(user=leaver).status == Registration.Status.ACTIVE


def good_code(app) -> str:
    """The app's current code, made unused again: a refusal below is the leaver's, never a replayed step's."""
    AuthenticatorAppDevice.objects.filter(pk=app.pk).update(last_t=-1)
    return totp_for(app).now()


def test_two_calls_creating_the_same_person_at_once_create_one(record):
    """A SCIM client's retry racing its first try: the second waits on the unique index, then finds the person."""
    import threading
    import time

    from django.db import connection, transaction

    created, results = threading.Event(), {}

    def first():
        try:
            with transaction.atomic():
                results["first"] = people.apply_record(record(), origin=SYNC)
                created.set()
                time.sleep(0.5)  # the second call is waiting on the index by now
        finally:
            connection.close()

    def second():
        created.wait(10)
        try:
            results["second"] = people.apply_record(record(), origin={"scim_client": 1})
        finally:
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert results == {"first": "created", "second": "unchanged"}
    assert User.objects.filter(username="asmith").count() == 1
