"""Phishing-resistant sign-in for staff (WA-05): from STAFF_PHISHING_RESISTANT_FROM the admin lets in help-desk
agents, auditors and superusers only when a security key or passkey verified their session; before, it reminds them.
Sign-in goes through the real views, with real TOTP codes and a software key's real WebAuthn answers."""

from datetime import timedelta

import pytest
from django.apps import apps
from django.utils import timezone
from django_otp.models import Device

from devices.models import Registration, SecurityKeyDevice
from devices.tests.helpers import new_key, register, sign_in_with_key, text
from identity import staff_factor
from identity.checks import check_staff_phishing_resistant_date, check_staff_phishing_resistant_set
from identity.events import describe
from identity.models import AuditEvent
from testsupport import details_of, is_otp_verified

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("relying_party")]

REFUSED = "Sign in with a security key or passkey"
NUDGE = "the admin accepts only a security key or a passkey"


def _days_from_today(settings, days: int) -> None:
    settings.STAFF_PHISHING_RESISTANT_FROM = (timezone.localdate() + timedelta(days=days)).isoformat()


def _refusals(person):
    return AuditEvent.objects.filter(action="admin.refused_factor", subject=person)


@pytest.mark.parametrize("who", ["staff_member", "auditor", "superuser"])
def test_WA_05_past_the_date_the_admin_refuses_staff_signed_in_with_a_code(who, request, client, sign_in, settings):
    person = request.getfixturevalue(who)
    _days_from_today(settings, 0)  # from the start of today
    sign_in(client, person)  # password and a code from the authenticator app

    for url in ("/admin/", "/admin/identity/auditevent/", "/admin/identity/user/", "/admin/reports/"):
        response = client.get(url, follow=True)
        assert response.status_code == 403, url
        page = text(response)
        assert REFUSED in page and "the authenticator app" in page and "My devices" in page

    refusals = _refusals(person).order_by("sequence")
    assert refusals.count() == 4 and {e.actor for e in refusals} == {person}
    assert details_of(refusals.first()) == {"factor": "authenticator_app", "path": "/admin/"}
    assert describe("admin.refused_factor", refusals.first().details) == (
        "Turned away from the admin: signed in with the authenticator app, which can be phished; a security key or "
        "passkey is required (asked for /admin/)"
    )


def test_WA_05_past_the_date_the_admin_lets_staff_in_with_a_security_key(client, staff_member, settings):
    desk = register(staff_member, new_key(), label="Desk key")
    key = new_key()
    register(staff_member, key, label="Blue key", session_device=desk.security_key_device)
    _days_from_today(settings, -30)

    sign_in_with_key(client, staff_member, key)

    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/identity/auditevent/").status_code == 200
    assert NUDGE not in text(client.get("/admin/"))
    assert not _refusals(staff_member).exists()


def test_WA_05_a_refused_agent_with_a_key_is_told_to_sign_in_with_it(client, staff_member, sign_in, settings):
    register(staff_member, new_key(), label="Blue key")
    _days_from_today(settings, -1)
    sign_in(client, staff_member, staff_member.registrations.get(kind=Registration.Kind.MOBILE).app_device)

    page = text(client.get("/admin/", follow=True))

    assert "You have one" in page and "“Blue key: security key”" in page  # as the sign-in page names it
    assert 'action="/account/sign-out/"' in page


def test_WA_05_a_refused_agent_without_a_key_adds_one_and_is_let_in_with_it(client, staff_member, sign_in, settings):
    """Nobody is stuck: My devices and the wizard are outside the admin, and the session's code suffices there to
    add a first key; the admin then lets in a session signed in with that key (not the code's session, which stays
    a code's)."""
    _days_from_today(settings, -1)
    sign_in(client, staff_member)
    page = text(client.get("/admin/", follow=True))
    assert "You have none yet" in page and 'href="/devices/"' in page

    assert client.get("/devices/").status_code == 200
    response = client.post("/enroll/device-type/", {"kind": "security_key"})
    registration = Registration.objects.get(user=staff_member, kind=Registration.Kind.SECURITY_KEY)
    options = client.post(f"/enroll/{registration.pk}/security-key/options/", {"label": "Blue key"}).json()
    key = new_key()
    response = client.post(response["Location"], {"label": "Blue key", "credential": key.create(options)})
    assert response.status_code == 302, response.content[:800]

    assert client.get("/admin/", follow=True).status_code == 403
    client.logout()
    sign_in_with_key(client, staff_member, key)
    assert client.get("/admin/").status_code == 200


def test_WA_05_removing_the_phone_a_session_was_verified_with_never_makes_it_a_keys(
    client, staff_member, sign_in, settings
):
    """Signed in with the app's code, the agent removes that phone; only a key is left. The session must not come
    to count as verified with the key it never used: it ends, and the agent signs in again with the key."""
    key = new_key()
    register(staff_member, key, label="Blue key")
    _days_from_today(settings, -1)
    phone = staff_member.registrations.get(kind=Registration.Kind.MOBILE)
    sign_in(client, staff_member, phone.app_device)

    response = client.post(f"/devices/{phone.pk}/remove/", follow=True)

    assert "Sign in again with your security key or passkey." in text(response)
    assert not is_otp_verified(client)
    assert client.get("/admin/")["Location"].startswith("/admin/login/")
    phone.refresh_from_db()
    assert phone.status == Registration.Status.RETIRED
    sign_in_with_key(client, staff_member, key)
    assert client.get("/admin/").status_code == 200


def test_WA_05_before_the_date_staff_with_a_code_are_let_in_and_reminded(client, auditor, sign_in, settings):
    _days_from_today(settings, 14)
    sign_in(client, auditor)

    page = text(client.get("/admin/"))

    assert f"From {staff_factor.start_words()}, {NUDGE}" in page
    assert "Add one under" in page and 'href="/devices/"' in page
    assert not _refusals(auditor).exists()


def test_WA_05_the_reminder_tells_a_key_holder_to_use_it(client, staff_member, sign_in, settings):
    register(staff_member, new_key(), label="Blue key")
    _days_from_today(settings, 14)
    sign_in(client, staff_member, staff_member.registrations.get(kind=Registration.Kind.MOBILE).app_device)

    page = text(client.get("/admin/identity/user/"))

    assert NUDGE in page and "You have one registered: next time, sign in with it" in page


def test_WA_05_unset_is_not_enforced_and_nobody_is_reminded(client, staff_member, sign_in, settings):
    settings.STAFF_PHISHING_RESISTANT_FROM = ""
    sign_in(client, staff_member)

    page = text(client.get("/admin/"))

    assert NUDGE not in page and "People, devices and audit" in page


def test_WA_05_the_date_starts_at_midnight_in_the_server_time_zone(settings):
    settings.STAFF_PHISHING_RESISTANT_FROM = "2027-03-01"
    start = staff_factor.enforced_from()
    assert timezone.localtime(start).isoformat().startswith("2027-03-01T00:00:00")
    assert not staff_factor.in_force(start - timedelta(seconds=1)) and staff_factor.in_force(start)
    assert staff_factor.start_words() == "1 March 2027"


def test_WA_05_only_webauthn_credentials_are_phishing_resistant():
    """Every django-otp device model says whether it resists phishing; only the WebAuthn one (keys and passkeys)
    does. App, text or call, backup and bypass codes are typed, so a look-alike page can take them."""
    ours = [m for m in apps.get_app_config("devices").get_models() if issubclass(m, Device)]
    assert {m.__name__: m.phishing_resistant for m in ours} == {
        "AuthenticatorAppDevice": False,
        "PhoneDevice": False,
        "SecurityKeyDevice": True,
        "BackupCodeDevice": False,
        "BypassCodeDevice": False,
    }
    assert SecurityKeyDevice.phishing_resistant


def test_WA_05_a_device_model_that_does_not_say_is_not_phishing_resistant(staff_member):
    staff_member.otp_device = object()  # django-otp's attribute, set by its middleware
    assert not staff_factor.signed_in_phishing_resistant(staff_member)


def test_WA_05_checks_refuse_an_unreadable_date_and_say_when_it_is_unset(settings):
    settings.STAFF_PHISHING_RESISTANT_FROM = "1 March 2027"
    [error] = check_staff_phishing_resistant_date(None)
    assert error.id == "identity.E013" and "YYYY-MM-DD" in error.msg

    settings.STAFF_PHISHING_RESISTANT_FROM = "2027-03-01"
    assert check_staff_phishing_resistant_date(None) == [] and check_staff_phishing_resistant_set(None) == []

    settings.STAFF_PHISHING_RESISTANT_FROM = ""
    [info] = check_staff_phishing_resistant_set(None)
    assert info.id == "identity.I108" and info.level < 30  # said, never a warning that fails check --deploy


def _add_key_through_the_wizard(client, key, label="New key"):
    client.post("/enroll/device-type/", {"kind": "security_key"})
    registration = Registration.objects.filter(kind=Registration.Kind.SECURITY_KEY).order_by("-pk").first()
    url = f"/enroll/{registration.pk}/security-key/"
    options = client.post(url + "options/", {"label": label}).json()
    return client.post(url, {"label": label, "credential": key.create(options)}, follow=True)


def test_WA_05_staff_holding_a_key_add_another_only_from_a_session_signed_in_with_one(
    client, staff_member, sign_in, settings
):
    register(staff_member, new_key(), label="Blue key")
    sign_in(client, staff_member, staff_member.registrations.get(kind=Registration.Kind.MOBILE).app_device)
    page = text(_add_key_through_the_wizard(client, new_key(), label="Attacker key"))
    assert "sign in with the one you have first" in page
    assert SecurityKeyDevice.objects.filter(user=staff_member, confirmed=True).count() == 1
    refused = AuditEvent.objects.get(action="enrollment.security_key_rejected", subject=staff_member)
    assert refused.details["reason"] == "staff_key_needed"
