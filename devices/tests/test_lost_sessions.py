"""Sessions when a device is lost or removed (BND-05), and the setup hold after the last one is lost (BND-02).

Sessions are real rows in the session table, signed in through the real views with real TOTP codes.
"""

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ValidationError
from django.test import Client, override_settings
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY

from devices import errors, services
from devices.models import BackupCodeDevice, Registration
from devices.services import security_keys
from devices.views import LOSS_REPORTED_SESSION_KEY
from identity.models import PersonSession as Session
from testsupport import PASSWORD, fresh_code, totp_for

from .helpers import (
    ORIGIN,
    RP_ID,
    add_app_device,
    events,
    new_key,
    pending_app_registration,
    pending_key,
    register,
    registration_challenge,
    sign_in_with_key,
    text,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

SIGN_IN = "/account/sign-in/"


def signed_in(sign_in, person, device, clock) -> Client:
    browser = Client()
    sign_in(browser, person, device)
    clock.tick(30)  # the next sign-in gets a code of its own (OTP-04)
    assert browser.get("/devices/").status_code == 200
    return browser


def session_exists(browser) -> bool:
    return Session.objects.filter(session_key=browser.session.session_key).exists()


def test_bnd05_reporting_the_last_device_lost_ends_every_other_session_in_the_store(person, enroll, sign_in, clock):
    """The account takeover this guards against: B stays signed in after A reports the only phone lost, then binds a
    tablet."""
    phone = enroll(person)
    b = signed_in(sign_in, person, phone.app_device, clock)
    a = signed_in(sign_in, person, phone.app_device, clock)

    response = a.post(f"/devices/{phone.pk}/lost/")

    assert response["Location"] == "/enroll/"
    assert not session_exists(b)  # gone from the database, not only logged out when it next shows up
    assert session_exists(a)
    event = events("device.reported_lost").get()
    assert event.details["last_factor"] is True and event.details["sessions_ended"] == 1
    # B reloads My devices, or tries to start a setup: signed out.
    assert b.get("/devices/")["Location"].startswith(SIGN_IN)
    assert b.post("/enroll/device-type/", {"kind": "tablet"})["Location"].startswith(SIGN_IN)
    # A password alone does not open a setup for B either.
    refused = b.post(SIGN_IN, {"username": person.username, "password": PASSWORD})
    assert refused.status_code == 200 and "reported lost" in text(refused)
    # The session that reported the loss may set up the new device.
    started = a.post("/enroll/device-type/", {"kind": "tablet"})
    assert started.status_code == 302 and "/platform/" in started["Location"]
    assert not events("device.bound").filter(sequence__gt=event.sequence).exists()


def test_bnd05_a_lost_device_ends_every_session_verified_with_it_and_no_other(person, enroll, sign_in, clock):
    phone = enroll(person)
    tablet = add_app_device(person, kind="tablet")
    with_phone = signed_in(sign_in, person, phone.app_device, clock)
    with_tablet = signed_in(sign_in, person, tablet.app_device, clock)
    reporting = signed_in(sign_in, person, phone.app_device, clock)

    response = reporting.post(f"/devices/{phone.pk}/lost/")

    # The reporting session was verified with the lost phone itself: it ends too, and says so.
    assert response["Location"] == SIGN_IN
    assert not session_exists(with_phone)
    assert reporting.get("/devices/")["Location"].startswith(SIGN_IN)
    assert with_tablet.get("/devices/").status_code == 200 and session_exists(with_tablet)
    assert events("device.reported_lost").get().details["sessions_ended"] == 1


def test_bnd05_removing_the_device_this_session_used_keeps_it_signed_in(person, enroll, sign_in, clock):
    """Three tablets, this session verified with the one activated last: removing it keeps this session signed in,
    ends the other sessions verified with it, and leaves one verified with another device alone."""
    first = enroll(person, kind="tablet", platform="android")
    add_app_device(person, kind="tablet")
    last = add_app_device(person, kind="tablet")
    elsewhere = signed_in(sign_in, person, last.app_device, clock)
    other_device = signed_in(sign_in, person, first.app_device, clock)
    here = signed_in(sign_in, person, last.app_device, clock)

    response = here.post(f"/devices/{last.pk}/remove/")

    assert response["Location"] == "/devices/"
    page = here.get("/devices/")
    assert page.status_code == 200 and f"{last.display_name} was removed" in text(page)
    assert here.session[DEVICE_ID_SESSION_KEY] != last.app_device.persistent_id
    # Other sessions verified with the removed device end; one verified with another device does not.
    assert not session_exists(elsewhere)
    assert other_device.get("/devices/").status_code == 200
    assert events("device.retired").get().details["sessions_ended"] == 1
    # Still within the step-up: the person can go on removing devices without signing in again.
    assert here.post(f"/devices/{first.pk}/remove/")["Location"] == "/devices/"


def test_WA_05_a_session_verified_with_a_code_is_never_carried_onto_a_key(person, enroll, sign_in, clock, settings):
    """The phone this session was verified with is removed; a security key and backup codes are left. The session
    stays signed in on the backup codes, a typed code as before: never on the key it did not use."""
    settings.WEBAUTHN_RP_ID, settings.WEBAUTHN_ORIGINS = RP_ID, [ORIGIN]
    phone = enroll(person)
    key = register(person, new_key())
    services.generate_backup_codes(person, actor=person, verified_at=timezone.now())
    browser = signed_in(sign_in, person, phone.app_device, clock)

    assert browser.post(f"/devices/{phone.pk}/remove/")["Location"] == "/devices/"

    assert browser.get("/devices/").status_code == 200
    assert browser.session[DEVICE_ID_SESSION_KEY] == BackupCodeDevice.objects.get(user=person).persistent_id
    assert browser.session[DEVICE_ID_SESSION_KEY] != key.security_key_device.persistent_id


def test_WA_05_a_session_verified_with_a_key_stays_a_keys_when_that_key_is_removed(person, enroll, clock, settings):
    """Removing the key this session used, with an app and another key left: the session is carried by the other
    key, as strong as what it was verified with."""
    settings.WEBAUTHN_RP_ID, settings.WEBAUTHN_ORIGINS = RP_ID, [ORIGIN]
    enroll(person)
    used, spare = new_key(), new_key()
    removed = register(person, used, label="Blue key")
    kept = register(person, spare, label="Spare key")
    browser = Client()
    sign_in_with_key(browser, person, used)

    assert browser.post(f"/devices/{removed.pk}/remove/")["Location"] == "/devices/"

    assert browser.get("/devices/").status_code == 200
    assert browser.session[DEVICE_ID_SESSION_KEY] == kept.security_key_device.persistent_id


def test_bnd02_the_setup_hold_applies_wherever_a_setup_starts_or_a_factor_binds(person, enroll, clock):
    phone = enroll(person)
    started_before = pending_app_registration(person, kind="tablet")
    app_before = totp_for(started_before.app_device)
    link_before = services.send_activation_link(started_before, actor=person)
    clock.tick(1)
    services.report_lost(phone, actor=person, verified_at=timezone.now())
    person.refresh_from_db()
    held_since = person.lost_last_factor_at
    assert held_since is not None
    now = timezone.now()

    refusals = {
        "start": lambda: services.start_enrollment(person, kind="tablet", verified_at=now),
        "start with another hold's time": lambda: services.start_enrollment(
            person, kind="tablet", verified_at=now, loss_reported_here_at=held_since.replace(year=2000)
        ),
        "issue a secret": lambda: services.issue_app_secret(started_before, actor=person, verified_at=now),
        "confirm": lambda: services.confirm_activation(
            started_before, code=app_before.now(), actor=person, verified_at=now
        ),
        "email a link": lambda: services.send_activation_link(started_before, actor=person),
        "open an emailed link": lambda: services.open_activation_link(link_before, password=PASSWORD),
        "backup codes": lambda: services.generate_backup_codes(person, actor=person, verified_at=now),
    }
    for name, attempt in refusals.items():
        with pytest.raises(ValidationError) as refused:
            attempt()
        assert refused.value.code == "setup_held", name
        assert refused.value.messages == [errors.SETUP_HELD]
    started_before.refresh_from_db()
    assert started_before.status == Registration.Status.PENDING and not started_before.app_device.confirmed
    link_before.refresh_from_db()
    assert link_before.consumed_at is None

    # The session that reported the loss starts a setup and finishes it with a real code.
    clock.tick(1)
    new = services.start_enrollment(person, kind="mobile", verified_at=now, loss_reported_here_at=held_since)
    new = services.set_phone_number(new, phone_number="+16175550923", actor=person, verified_at=now)
    new = services.set_platform(new, platform="iphone", actor=person)
    new = services.issue_app_secret(new, actor=person, verified_at=now)
    bound = services.confirm_activation(new, code=fresh_code(new.app_device), actor=person, verified_at=now)
    assert bound.status == Registration.Status.ACTIVE
    # With a working device again, the person's own verified sessions set up devices as usual.
    assert services.start_enrollment(person, kind="tablet", verified_at=timezone.now()).pk


def test_bnd02_the_reporting_session_keeps_the_hold_time_it_may_set_up_under(person, enroll, sign_in, clock):
    phone = enroll(person)
    browser = signed_in(sign_in, person, phone.app_device, clock)
    browser.post(f"/devices/{phone.pk}/lost/")
    person.refresh_from_db()
    assert browser.session[LOSS_REPORTED_SESSION_KEY] == person.lost_last_factor_at.isoformat()


@pytest.mark.parametrize(
    "engine", ["django.contrib.sessions.backends.signed_cookies", "django.contrib.sessions.backends.db"]
)
def test_bnd05_a_session_engine_that_does_not_name_the_person_is_refused_by_a_system_check(engine):
    assert "identity.E004" not in {problem.id for problem in run_checks()}
    with override_settings(SESSION_ENGINE=engine):
        assert "identity.E004" in {problem.id for problem in run_checks()}


def test_bnd05_each_session_row_names_its_person_and_device(person, enroll, sign_in, clock):
    phone = enroll(person)
    browser = signed_in(sign_in, person, phone.app_device, clock)
    row = Session.objects.get(session_key=browser.session.session_key)
    assert (row.user_id, row.otp_device_id) == (person.pk, phone.app_device.persistent_id)


def test_bnd02_the_setup_hold_refuses_a_landline_code_sent_before_the_loss(
    person, enroll, clock, recording_gateway, sending
):
    """A number proven by a code that was sent before the loss would bind a landline: the hold refuses it."""
    phone = enroll(person)
    now = timezone.now()
    landline = services.start_enrollment(person, kind="landline", verified_at=now)
    landline = services.set_phone_number(landline, phone_number="+16175550987", actor=person, verified_at=now)
    with sending():
        services.send_phone_code(landline, channel="voice", actor=person, verified_at=now)
    code = recording_gateway.last_to("+16175550987").code
    clock.tick(1)
    services.report_lost(phone, actor=person, verified_at=timezone.now())

    with pytest.raises(ValidationError) as refused:
        services.confirm_phone_code(landline, code=code, actor=person, verified_at=timezone.now())
    assert refused.value.code == "setup_held"
    landline.refresh_from_db()
    assert landline.status == Registration.Status.PENDING
    assert not events("device.bound", subject=person).filter(details__registration=landline.pk).exists()


def test_bnd02_the_setup_hold_refuses_a_security_key_whose_setup_began_before_the_loss(person, enroll, settings, clock):
    settings.WEBAUTHN_RP_ID = RP_ID
    settings.WEBAUTHN_ORIGINS = [ORIGIN]
    phone = enroll(person)
    registration = pending_key(person)
    options, claim = registration_challenge(person, registration=registration)
    clock.tick(1)
    services.report_lost(phone, actor=person, verified_at=timezone.now())

    with pytest.raises(ValidationError) as refused:
        security_keys.register_security_key(
            person,
            registration=registration,
            response_json=new_key().create(options),
            challenge=claim,
            label="Blue key",
            actor=person,
            ip=None,
            verified_at=timezone.now(),
        )
    assert refused.value.code == "setup_held"
    registration.refresh_from_db()
    assert registration.status == Registration.Status.PENDING
