"""A new phone for an app device (ACT-06) and a lost one (BND-05), through the real views.

The "new phone" is whatever reads the secret the page offers: the QR code is
read back from the served SVG by a real decoder, so a test that passes has
proven the page shows the new secret and not the old one."""

import json

import pyotp
import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from devices import errors, services, tasks
from devices.models import ActivationLink, OutboundMessage, Registration
from devices.services import security_keys
from devices.webauthn import SessionChallenge
from testsupport import PASSWORD, details_of, fresh_code, race, totp_for, wrong_code

from .authenticator import SoftwareKey
from .helpers import (
    LANDLINE,
    LINK_RE,
    SECOND_FACTOR,
    SIGN_IN,
    add_app_device,
    code_not_made_by,
    confirm,
    events,
    new_phone_url,
    offered_at_sign_in,
    page_secret,
    pending_app_registration,
    qr_secret,
    secret_b32,
    sign_in_with,
    signed_in_with,
    start,
    started,
    text,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_back_off")]

# --- ACT-06: a new secret, shown instead of the old one -----------------------------------------------------


def test_act06_reactivation_issues_a_new_secret_and_shows_only_it(upgrading, person, phone):
    old = phone.app_device
    old_secret = secret_b32(old)
    assert upgrading.get(new_phone_url(phone)).status_code == 200

    response = start(upgrading, phone)

    assert response.status_code == 302 and response["Location"] == new_phone_url(phone)
    registration = started(phone)
    new = registration.pending_app_device
    assert new.pk != old.pk and not new.confirmed
    assert registration.app_device_id == old.pk  # the old one stays in place until the new one is confirmed
    assert new.secret_bytes() != old.secret_bytes() and len(new.secret_bytes()) >= 20
    page = upgrading.get(new_phone_url(phone))
    assert "no-store" in page["Cache-Control"]
    assert page_secret(page) == qr_secret(upgrading, phone) == secret_b32(new)
    assert old_secret not in text(page) and old_secret not in page_secret(page)
    # Scanning the QR code makes the codes the new device expects, not the old one's.
    assert pyotp.TOTP(qr_secret(upgrading, phone)).now() == totp_for(new).now()
    assert registration.reactivation_expires_at == timezone.now() + settings.ACTIVATION_LINK_TTL
    # The new secret is never offered at sign-in before its first code (ACT-04).
    assert offered_at_sign_in(person) == {old.persistent_id}
    assert details_of(events("device.reactivation_started").get()) == {
        "registration": phone.pk,
        "old_phone_lost": False,
    }


def test_act06_a_second_start_keeps_the_same_new_secret(upgrading, phone):
    start(upgrading, phone)
    first = started(phone).pending_app_device_id
    assert start(upgrading, phone).status_code == 302
    assert started(phone).pending_app_device_id == first
    assert events("device.reactivation_started").count() == 1


def test_act06_every_reactivation_issues_a_secret_never_seen_before(upgrading, phone, clock):
    seen = {secret_b32(phone.app_device)}
    for _ in range(3):
        start(upgrading, phone)
        secret = qr_secret(upgrading, started(phone))
        assert secret not in seen
        seen.add(secret)
        upgrading.post(new_phone_url(phone), {"action": "cancel"})
    start(upgrading, phone)
    registration = started(phone)
    assert confirm(upgrading, registration, fresh_code(registration.pending_app_device)).status_code == 302
    registration.refresh_from_db()
    assert secret_b32(registration.app_device) not in seen


def test_act06_old_phone_keeps_working_until_the_new_one_is_confirmed_and_not_after(upgrading, person, phone, clock):
    old = phone.app_device
    old_phone = totp_for(old)  # the app on the old phone keeps its copy of the secret
    start(upgrading, phone)
    new_phone = pyotp.TOTP(page_secret(upgrading.get(new_phone_url(phone))))

    # While the change is pending, the old phone signs in as before.
    clock.tick(60)
    laptop = Client()
    response = sign_in_with(laptop, person, old, old_phone.now())
    assert response.status_code == 302 and signed_in_with(laptop) == old.persistent_id

    clock.tick(30)
    response = confirm(upgrading, phone, new_phone.now())

    assert response.status_code == 302 and response["Location"] == "/devices/"
    registration = Registration.objects.get(pk=phone.pk)
    new = registration.app_device
    assert registration.status == Registration.Status.ACTIVE and registration.pending_app_device is None
    assert new.pk != old.pk and new.confirmed
    old.refresh_from_db()
    assert not old.confirmed and old.encrypted_secret == ""  # retired: the row stays (BND-04), the seed goes
    assert upgrading.get(f"/enroll/{phone.pk}/qr.svg").status_code == 404
    assert secret_b32(new) not in text(upgrading.get(new_phone_url(phone)))
    assert offered_at_sign_in(person) == {new.persistent_id}

    # From now on the old phone's codes are refused; the new phone's work.
    clock.tick(30)
    refused = sign_in_with(Client(), person, old, old_phone.now())
    assert refused.status_code == 200 and "device" in refused.context["form"].errors
    tablet = Client()
    assert sign_in_with(tablet, person, new, new_phone.now()).status_code == 302
    assert signed_in_with(tablet) == new.persistent_id
    assert details_of(events("device.reactivated").get()) == {"registration": phone.pk, "retired_device": old.pk}


def test_act06_a_code_from_the_old_phone_cannot_confirm_the_new_one(upgrading, person, phone, clock):
    old = phone.app_device
    start(upgrading, phone)
    new = started(phone).pending_app_device
    old_code = code_not_made_by(new, totp_for(old), clock)

    response = confirm(upgrading, phone, old_code)

    assert response.status_code == 200
    assert errors.REACTIVATION_WRONG_CODE in text(response)
    registration = started(phone)
    assert registration.app_device_id == old.pk and registration.pending_app_device_id == new.pk
    old.refresh_from_db()
    new.refresh_from_db()
    assert old.confirmed and old.encrypted_secret and not new.confirmed
    assert events("device.reactivation_code_rejected").count() == 1
    assert not events("device.reactivated").exists()
    with pytest.raises(ValidationError) as refused:
        services.confirm_reactivation(
            registration, code=code_not_made_by(new, totp_for(old), clock), actor=person, verified_at=timezone.now()
        )
    assert refused.value.messages == [errors.REACTIVATION_WRONG_CODE]
    # The new phone's code still confirms it afterwards.
    assert confirm(upgrading, phone, fresh_code(new)).status_code == 302


@pytest.mark.parametrize("bad", ["", "12345", "1234567", "abcdef", "12 34 5x"])
def test_act06_malformed_codes_change_nothing(upgrading, phone, bad):
    start(upgrading, phone)
    response = confirm(upgrading, phone, bad)
    assert response.status_code == 200
    assert response.context["form"].errors["code"]
    registration = started(phone)
    assert not registration.pending_app_device.confirmed
    assert not events("device.reactivated").exists()


def test_act06_old_phone_lost_retires_the_old_secret_at_once(upgrading, person, phone, clock):
    old = phone.app_device
    old_phone = totp_for(old)

    start(upgrading, phone, old_phone_lost="on")

    registration = started(phone)
    old.refresh_from_db()
    assert not old.confirmed and old.encrypted_secret == ""
    assert offered_at_sign_in(person) == set()
    # With no working device left, the password alone gets nowhere: not past the second factor, not to enroll.
    clock.tick(30)
    laptop = Client()
    password_only = laptop.post(SIGN_IN, {"username": person.username, "password": PASSWORD})
    assert password_only.status_code == 200 and "reported lost" in text(password_only)
    assert laptop.get("/enroll/")["Location"].startswith(SIGN_IN)
    refused = laptop.post(SECOND_FACTOR, {"device": old.persistent_id, "code": old_phone.now()})
    assert refused["Location"] == SIGN_IN and signed_in_with(laptop) is None
    assert events("device.reactivation_started").get().details["old_phone_lost"] is True
    # This session was verified with the phone just retired: it stays open, but only to finish the change.
    for url in ("/devices/", "/devices/backup-codes/", f"/devices/{phone.pk}/lost/"):
        assert upgrading.get(url)["Location"] == new_phone_url(phone), url
    page = upgrading.get(new_phone_url(phone))
    assert page.status_code == 200 and page_secret(page) == secret_b32(registration.pending_app_device)
    assert upgrading.post(new_phone_url(phone), {"action": "cancel"}).status_code == 200
    assert started(phone).pending_app_device_id == registration.pending_app_device_id
    # The new phone takes over as usual, and the session is fully signed in again.
    new = registration.pending_app_device
    assert confirm(upgrading, phone, fresh_code(new))["Location"] == "/devices/"
    assert upgrading.get("/devices/").status_code == 200
    assert signed_in_with(upgrading) == new.persistent_id
    assert offered_at_sign_in(person) == {new.persistent_id}


def test_act06_old_phone_lost_with_another_device_refuses_the_old_code_at_sign_in(
    client, person, phone, clock, sign_in
):
    tablet = add_app_device(person, kind="tablet")
    old = phone.app_device
    old_phone = totp_for(old)
    sign_in(client, person, old)
    start(client, phone, old_phone_lost="on")

    clock.tick(30)
    laptop = Client()
    refused = sign_in_with(laptop, person, old, old_phone.now())

    assert refused.status_code == 200
    assert signed_in_with(laptop) is None
    assert f'value="{old.persistent_id}"' not in text(refused)
    assert offered_at_sign_in(person) == {tablet.app_device.persistent_id}


def test_act06_cancel_keeps_the_old_secret(upgrading, person, phone, clock):
    old = phone.app_device
    start(upgrading, phone)
    new = started(phone).pending_app_device
    new_phone = totp_for(new)

    response = upgrading.post(new_phone_url(phone), {"action": "cancel"})

    assert response.status_code == 302 and response["Location"] == "/devices/"
    registration = Registration.objects.get(pk=phone.pk)
    assert registration.status == Registration.Status.ACTIVE
    assert registration.app_device_id == old.pk and registration.pending_app_device is None
    new.refresh_from_db()
    assert not new.confirmed and new.encrypted_secret == ""  # the abandoned secret can never be used
    assert upgrading.get(f"/enroll/{phone.pk}/qr.svg").status_code == 404
    with pytest.raises(ValidationError) as refused:
        services.confirm_reactivation(registration, code=new_phone.now(), actor=person, verified_at=timezone.now())
    assert refused.value.messages == [errors.NOT_REACTIVATING]
    clock.tick(30)
    laptop = Client()
    assert sign_in_with(laptop, person, old, fresh_code(old)).status_code == 302
    assert details_of(events("device.reactivation_ended").get()) == {
        "registration": phone.pk,
        "reason": "cancelled",
        "retired": False,
    }
    assert not OutboundMessage.objects.filter(template="notice:device.reactivated").exists()


def test_act06_pending_reactivation_expires_after_24_hours(person, phone, clock):
    old = phone.app_device
    registration = services.start_reactivation(phone, actor=person, verified_at=timezone.now())
    new = registration.pending_app_device
    new_phone = totp_for(new)

    clock.tick(settings.ACTIVATION_LINK_TTL.total_seconds() - 60)
    assert services.expire_stale_reactivations() == 0
    assert started(registration).pending_app_device_id == new.pk

    clock.tick(61)
    assert services.expire_stale_reactivations() == 1
    assert services.expire_stale_reactivations() == 0

    registration.refresh_from_db()
    assert registration.status == Registration.Status.ACTIVE
    assert registration.app_device_id == old.pk and registration.pending_app_device is None
    assert registration.reactivation_expires_at is None
    new.refresh_from_db()
    assert not new.confirmed and new.encrypted_secret == ""
    with pytest.raises(ValidationError) as refused:
        services.confirm_reactivation(registration, code=new_phone.now(), actor=person, verified_at=timezone.now())
    assert refused.value.messages == [errors.NOT_REACTIVATING]
    # The old secret stayed and still signs in.
    laptop = Client()
    assert sign_in_with(laptop, person, old, fresh_code(old)).status_code == 302
    assert events("device.reactivation_ended").get().details == {
        "registration": phone.pk,
        "reason": "expired",
        "retired": False,
    }


def test_act06_the_beat_task_ends_stale_reactivations(person, phone, clock):
    assert settings.CELERY_BEAT_SCHEDULE["expire-reactivations"]["task"] == "devices.tasks.expire_reactivations"
    services.start_reactivation(phone, actor=person, verified_at=timezone.now())
    tasks.expire_reactivations.delay()
    assert started(phone).pending_app_device is not None

    clock.tick(settings.ACTIVATION_LINK_TTL.total_seconds() + 1)
    tasks.expire_reactivations.delay()

    phone.refresh_from_db()
    assert phone.status == Registration.Status.ACTIVE and phone.pending_app_device is None
    assert phone.app_device.confirmed


def test_act06_expired_reactivation_is_ended_by_its_page(person, phone, clock, sign_in):
    old = phone.app_device
    client = Client()
    sign_in(client, person, old)
    start(client, phone)
    new = started(phone).pending_app_device
    new_phone = totp_for(new)

    clock.tick(settings.ACTIVATION_LINK_TTL.total_seconds() + 1)
    # A day later the person signs in again (the session did not last), with the old phone: it still works.
    client = Client()
    sign_in(client, person, old)
    assert client.get(f"/enroll/{phone.pk}/qr.svg").status_code == 404
    too_late = confirm(client, phone, new_phone.now())

    assert too_late.status_code == 302 and too_late["Location"] == "/devices/"
    assert errors.REACTIVATION_EXPIRED in text(client.get("/devices/"))
    registration = Registration.objects.get(pk=phone.pk)
    assert registration.status == Registration.Status.ACTIVE and registration.app_device_id == old.pk
    new.refresh_from_db()
    assert not new.confirmed and new.encrypted_secret == ""
    assert not events("device.reactivated").exists()
    assert events("device.reactivation_ended").get().details["reason"] == "expired"


def test_act06_expired_reactivation_page_get(person, phone, clock, sign_in):
    client = Client()
    sign_in(client, person, phone.app_device)
    start(client, phone)
    clock.tick(settings.ACTIVATION_LINK_TTL.total_seconds() + 1)
    client = Client()
    sign_in(client, person, phone.app_device)

    response = client.get(new_phone_url(phone))

    assert response.status_code == 302 and response["Location"] == "/devices/"
    # The page only says so: a GET changes nothing (SES-06); the beat task or the next POST ends it.
    assert Registration.objects.get(pk=phone.pk).status == Registration.Status.REACTIVATING
    assert not events("device.reactivation_ended").exists()
    # Starting again issues yet another secret, with a new deadline.
    start(client, phone)
    registration = started(phone)
    assert registration.reactivation_expires_at == timezone.now() + settings.ACTIVATION_LINK_TTL


def test_act06_double_submit_of_the_confirm_binds_once(upgrading, person, phone, mailoutbox, sending):
    start(upgrading, phone)
    new = started(phone).pending_app_device
    code = fresh_code(new)

    with sending():
        first = confirm(upgrading, phone, code)
    with sending():
        second = confirm(upgrading, phone, code)

    assert first.status_code == 302 and first["Location"] == "/devices/"
    assert second.status_code == 302 and second["Location"] == "/devices/"
    registration = Registration.objects.get(pk=phone.pk)
    assert registration.status == Registration.Status.ACTIVE and registration.app_device_id == new.pk
    assert events("device.reactivated").count() == 1
    assert OutboundMessage.objects.filter(template="notice:device.reactivated").count() == 1
    assert len([m for m in mailoutbox if "new phone" in m.subject]) == 1


@pytest.mark.postgres
def test_act06_two_simultaneous_confirms_bind_once(transactional_db, make_user, enroll):
    person = make_user("racer")
    registration = services.start_reactivation(enroll(person), actor=person, verified_at=timezone.now())
    old, new = registration.app_device, registration.pending_app_device
    code = fresh_code(new)

    def submit():
        services.confirm_reactivation(registration, code=code, actor=person, verified_at=timezone.now())
        return "ok"

    outcomes = race(submit, submit)
    # The second sees the first's step used, or the change already over; either way nothing binds twice.
    assert "ok" in outcomes and set(outcomes) <= {"ok", "wrong_code", "not_reactivating", "already_bound"}
    registration.refresh_from_db()
    old.refresh_from_db()
    assert registration.status == Registration.Status.ACTIVE and registration.app_device_id == new.pk
    assert not old.confirmed and old.encrypted_secret == ""
    assert events("device.reactivated").count() == 1
    assert OutboundMessage.objects.filter(template="notice:device.reactivated").count() == 1


def test_act06_confirm_after_the_change_is_finished_needs_a_real_code(person, phone, clock):
    """A confirm that arrives once the change is over proves nothing, so it must not count as a code."""
    registration = services.start_reactivation(phone, actor=person, verified_at=timezone.now())
    new = registration.pending_app_device
    services.confirm_reactivation(registration, code=fresh_code(new), actor=person, verified_at=timezone.now())

    for code in ("000000", wrong_code(new)):
        with pytest.raises(ValidationError) as refused:
            services.confirm_reactivation(registration, code=code, actor=person, verified_at=timezone.now())
        assert refused.value.messages == [errors.NOT_REACTIVATING]
    assert events("device.reactivated").count() == 1


def test_act06_only_app_devices_can_move_to_a_new_phone(client, person, phone, sign_in, recording_gateway, sending):
    landline = services.start_enrollment(person, kind="landline", verified_at=timezone.now())
    landline = services.set_phone_number(landline, phone_number=LANDLINE, actor=person, verified_at=timezone.now())
    with sending():
        services.send_phone_code(landline, channel="voice", actor=person, verified_at=timezone.now())
    landline = services.confirm_phone_code(
        landline, code=recording_gateway.last_to(LANDLINE).code, actor=person, verified_at=timezone.now()
    )
    assert landline.status == Registration.Status.ACTIVE
    sign_in(client, person, phone.app_device)

    for action in ({}, {"action": "start"}, {"action": "start", "old_phone_lost": "on"}):
        response = client.post(new_phone_url(landline), action) if action else client.get(new_phone_url(landline))
        assert response.status_code == 404
    with pytest.raises(ValidationError) as refused:
        services.start_reactivation(landline, actor=person, verified_at=timezone.now())
    assert refused.value.messages == [errors.NO_APP_FOR_KIND]
    landline.refresh_from_db()
    assert landline.status == Registration.Status.ACTIVE and landline.pending_app_device is None
    assert not events("device.reactivation_started").exists()


def test_act06_a_security_key_cannot_move_to_a_new_phone(client, person, phone, sign_in, settings):
    settings.WEBAUTHN_RP_ID = "mfa.example.edu"
    settings.WEBAUTHN_ORIGINS = ["https://mfa.example.edu"]
    pending = services.start_enrollment(person, kind="security_key", verified_at=timezone.now())
    options, challenge = security_keys.start_security_key_registration(person, session_key="s", registration=pending)
    key = SoftwareKey(rp_id="mfa.example.edu", origin="https://mfa.example.edu")
    registration = security_keys.register_security_key(
        person,
        registration=pending,
        response_json=key.create(json.loads(options)),
        challenge=SessionChallenge(challenge.pk, "s"),
        label="Blue key",
        actor=person,
        verified_at=timezone.now(),
    )
    assert registration.status == Registration.Status.ACTIVE
    sign_in(client, person, phone.app_device)

    assert client.get(new_phone_url(registration)).status_code == 404
    assert start(client, registration).status_code == 404
    with pytest.raises(ValidationError) as refused:
        services.start_reactivation(registration, actor=person, verified_at=timezone.now())
    assert refused.value.messages == [errors.NO_APP_FOR_KIND]
    registration.refresh_from_db()
    assert registration.status == Registration.Status.ACTIVE


def test_act06_unfinished_or_retired_devices_cannot_move(client, person, phone, sign_in):
    unfinished = pending_app_registration(person, kind="tablet")
    retired = add_app_device(person, kind="tablet")
    services.retire_registration(retired, actor=person, verified_at=timezone.now())
    sign_in(client, person, phone.app_device)
    for registration in (unfinished, retired):
        assert client.get(new_phone_url(registration)).status_code == 404
        assert start(client, registration).status_code == 404
        registration.refresh_from_db()
        assert registration.pending_app_device is None
    for registration in (unfinished, retired):
        with pytest.raises(ValidationError) as refused:
            services.start_reactivation(registration, actor=person, verified_at=timezone.now())
        assert refused.value.messages == [errors.NOT_ACTIVE]


def test_act06_the_emailed_link_during_a_change_offers_only_the_new_secret(
    upgrading, person, phone, django_capture_on_commit_callbacks, mailoutbox
):
    start(upgrading, phone)
    new = started(phone).pending_app_device
    with django_capture_on_commit_callbacks(execute=True):
        response = upgrading.post(f"/enroll/{phone.pk}/email-link/")
    assert response["Location"] == new_phone_url(phone)
    link = ActivationLink.objects.get(registration=phone)
    assert link.purpose == ActivationLink.Purpose.REACTIVATION
    assert link.expires_at <= started(phone).reactivation_expires_at
    token = LINK_RE.search(mailoutbox[-1].body).group(2)

    new_phone = Client()
    new_phone.post("/activate/", {"token": token})
    ready = new_phone.post("/activate/", {"password": PASSWORD})

    assert ready.status_code == 200
    assert secret_b32(new) in text(ready)
    assert secret_b32(phone.app_device) not in text(ready)


def test_act06_no_link_is_emailed_for_an_expired_change(person, phone, clock, sign_in, sending, mailoutbox):
    """The change expired and the beat task has not ended it yet: a link would be dead before it arrived."""
    start_and_leave = Client()
    sign_in(start_and_leave, person, phone.app_device)
    start(start_and_leave, phone)
    clock.tick(settings.ACTIVATION_LINK_TTL.total_seconds() + 1)
    client = Client()
    sign_in(client, person, phone.app_device)

    with sending():
        response = client.post(f"/enroll/{phone.pk}/email-link/")

    assert response.status_code == 302 and response["Location"] == "/devices/"
    assert text(client.get("/devices/")).count(errors.REACTIVATION_EXPIRED) == 1
    assert not ActivationLink.objects.exists() and not mailoutbox
    assert not OutboundMessage.objects.filter(template="activation_link").exists()
    assert not events("activation_link.sent").exists()
    with pytest.raises(ValidationError) as refused:
        services.send_activation_link(started(phone), actor=person)
    assert refused.value.messages == [errors.REACTIVATION_EXPIRED]


def test_the_end_of_the_setup_of_a_device_moving_to_a_new_phone_leads_to_the_move(upgrading, person, phone):
    """A bookmarked or reopened last page of the wizard says where the device is now, not that a setup expired."""
    start(upgrading, phone)
    for step in ("done", "activate", "platform"):
        response = upgrading.get(f"/enroll/{phone.pk}/{step}/", follow=True)

        assert response.redirect_chain[-1][0] == new_phone_url(phone)
        page = text(response)
        assert errors.SETUP_DONE_PHONE_CHANGE_UNDER_WAY in page and errors.PENDING_EXPIRED not in page


def test_the_end_of_the_setup_of_a_removed_device_leads_to_my_devices(upgrading, person, phone, sign_in):
    tablet = add_app_device(person, kind="tablet")
    services.retire_registration(phone, actor=person, verified_at=timezone.now())

    response = upgrading.get(f"/enroll/{phone.pk}/done/", follow=True)

    if response.redirect_chain[-1][0].startswith(SIGN_IN):  # the session ended with the device it was verified with
        sign_in(upgrading, person, tablet.app_device)
        response = upgrading.get(f"/enroll/{phone.pk}/done/", follow=True)
    assert response.redirect_chain[-1][0] == "/devices/"
    page = text(response)
    assert errors.SETUP_DONE_DEVICE_REMOVED.format(device=phone.display_name) in page
    assert errors.PENDING_EXPIRED not in page
