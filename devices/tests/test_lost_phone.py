"""A lost phone, the recent second factor a change needs, and only one's own devices."""

from datetime import timedelta

import pyotp
import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from devices import errors, services
from devices.models import ActivationLink, AuthenticatorAppDevice, OutboundMessage, Registration
from identity import services as identity_services
from testsupport import PASSWORD, details_of, fresh_code, totp_for

from .helpers import (
    MOBILE,
    SECOND_FACTOR,
    SIGN_IN,
    add_app_device,
    confirm,
    confirm_url,
    events,
    new_phone_url,
    offered_at_sign_in,
    page_secret,
    qr_secret,
    secret_b32,
    sign_in_with,
    signed_in_with,
    start,
    started,
    text,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_back_off")]

# --- BND-01: a recent second factor ---------------------------------------------------------------------------


def test_bnd01_starting_a_reactivation_needs_a_recent_second_factor(upgrading, person, phone, clock):
    clock.tick(settings.REAUTH_MAX_AGE_SECONDS + 1)

    response = start(upgrading, phone, old_phone_lost="on")

    assert response.status_code == 302
    assert response["Location"] == confirm_url(new_phone_url(phone))
    phone.refresh_from_db()
    phone.app_device.refresh_from_db()
    assert phone.status == Registration.Status.ACTIVE and phone.pending_app_device is None
    assert phone.app_device.confirmed and phone.app_device.encrypted_secret
    assert not events("device.reactivation_started").exists()

    # A fresh code on the confirm page, and it goes through.
    clock.tick(30)
    step_up = upgrading.post(
        confirm_url(new_phone_url(phone)),
        {"device": phone.app_device.persistent_id, "code": fresh_code(phone.app_device)},
    )
    assert step_up["Location"] == new_phone_url(phone)
    assert start(upgrading, phone)["Location"] == new_phone_url(phone)
    assert started(phone).pending_app_device is not None


def test_bnd01_service_refuses_a_reactivation_without_a_recent_second_factor(person, phone):
    for verified_at in (None, timezone.now() - timedelta(seconds=settings.REAUTH_MAX_AGE_SECONDS + 1)):
        with pytest.raises(services.ReauthRequired):
            services.start_reactivation(phone, actor=person, verified_at=verified_at, old_phone_lost=True)
    phone.refresh_from_db()
    assert phone.status == Registration.Status.ACTIVE
    assert AuthenticatorAppDevice.objects.get(pk=phone.app_device_id).confirmed


def test_bnd01_reporting_a_device_lost_needs_a_recent_second_factor(upgrading, person, phone, clock):
    clock.tick(settings.REAUTH_MAX_AGE_SECONDS + 1)
    lost_url = f"/devices/{phone.pk}/lost/"

    response = upgrading.post(lost_url)

    assert response.status_code == 302 and response["Location"] == confirm_url(lost_url)
    phone.refresh_from_db()
    assert phone.status == Registration.Status.ACTIVE
    assert not events("device.reported_lost").exists()
    with pytest.raises(services.ReauthRequired):
        services.report_lost(phone, actor=person, verified_at=None)


# --- BND-05 and BND-02: a lost phone ----------------------------------------------------------------------------


def turn_on_phone_codes(registration, person, gateway, sending):
    with sending():
        services.send_phone_code(registration, channel="sms", actor=person, verified_at=timezone.now())
    return services.confirm_phone_code(
        registration, code=gateway.last_to(MOBILE).code, actor=person, verified_at=timezone.now()
    )


@pytest.fixture
def phone_with_texts(person, phone, clock, recording_gateway, sending):
    """The mobile with codes by text and call turned on as well as the app."""
    registration = turn_on_phone_codes(phone, person, recording_gateway, sending)
    registration.refresh_from_db()
    assert registration.phone_device.confirmed
    clock.tick(61)  # the next text is not held back by the one that turned texts on
    recording_gateway.delivered.clear()
    return registration


def test_bnd05_a_lost_phone_stops_working_at_once(
    person, phone_with_texts, clock, recording_gateway, sending, sign_in, mailoutbox
):
    mobile = phone_with_texts
    app, texts = mobile.app_device, mobile.phone_device
    app_on_the_lost_phone = totp_for(app)
    tablet = add_app_device(person, kind="tablet")
    # The thief has the password and the phone: they ask for a text while the owner reports the loss.
    thief = Client()
    thief.post(SIGN_IN, {"username": person.username, "password": PASSWORD})
    with sending():
        thief.post(SECOND_FACTOR, {"send": f"{texts.persistent_id}|sms"})
    stolen_code = recording_gateway.last_to(MOBILE).code
    owner = Client()
    sign_in(owner, person, tablet.app_device)
    lost_url = f"/devices/{mobile.pk}/lost/"
    assert "It is lost: stop it now" in text(owner.get(lost_url))
    assert Registration.objects.get(pk=mobile.pk).status == Registration.Status.ACTIVE  # the GET changed nothing

    response = owner.post(lost_url)

    assert response.status_code == 302 and response["Location"] == "/devices/"
    mobile.refresh_from_db()
    app.refresh_from_db()
    texts.refresh_from_db()
    assert mobile.status == Registration.Status.RETIRED and mobile.retired_by == person
    assert not app.confirmed and app.encrypted_secret == "" and not texts.confirmed
    # Every way the lost phone could answer is refused.
    for device, code in ((texts, stolen_code), (app, app_on_the_lost_phone.now())):
        refused = thief.post(SECOND_FACTOR, {"device": device.persistent_id, "code": code})
        assert refused.status_code == 200 and signed_in_with(thief) is None
    clock.tick(61)
    with sending():
        thief.post(SECOND_FACTOR, {"send": f"{texts.persistent_id}|sms"})
        thief.post(SECOND_FACTOR, {"send": f"{texts.persistent_id}|voice"})
    assert recording_gateway.delivered == [recording_gateway.last_to(MOBILE)]  # nothing more went out
    assert offered_at_sign_in(person) == {tablet.app_device.persistent_id}
    # BND-04: the history stays, listed as no longer in use.
    removed = text(owner.get("/devices/")).split("Removed devices", 1)[1]
    assert mobile.display_name in removed
    assert Registration.objects.filter(pk=mobile.pk).exists()
    assert AuthenticatorAppDevice.objects.filter(pk=app.pk).exists()
    assert details_of(events("device.reported_lost").get()) == {
        "registration": mobile.pk,
        "kind": "mobile",
        "last_factor": False,
        "sessions_ended": 0,
    }
    assert OutboundMessage.objects.filter(template="notice:device.reported_lost").count() == 1


def test_bnd05_a_phone_lost_during_a_change_loses_both_secrets(upgrading, person, phone):
    start(upgrading, phone)
    new = started(phone).pending_app_device
    new_phone = totp_for(new)

    assert upgrading.post(f"/devices/{phone.pk}/lost/").status_code == 302

    phone.refresh_from_db()
    assert phone.status == Registration.Status.RETIRED and phone.pending_app_device is None
    for device in (phone.app_device, new):
        device.refresh_from_db()
        assert not device.confirmed and device.encrypted_secret == ""
    with pytest.raises(ValidationError):
        services.confirm_reactivation(phone, code=new_phone.now(), actor=person, verified_at=timezone.now())


def test_bnd05_reporting_the_only_device_lost_leads_to_a_new_setup(upgrading, person, phone):
    response = upgrading.post(f"/devices/{phone.pk}/lost/")

    assert response["Location"] == "/enroll/"
    assert offered_at_sign_in(person) == set()
    assert upgrading.get("/enroll/").status_code == 200
    # Reported twice (a double submit, or a stale tab) changes nothing more.
    assert upgrading.post(f"/devices/{phone.pk}/lost/").status_code == 404
    assert events("device.reported_lost").get().details["last_factor"] is True


def test_bnd02_after_the_last_device_is_lost_a_password_alone_opens_no_setup(upgrading, person, phone, make_user):
    upgrading.post(f"/devices/{phone.pk}/lost/")
    # Someone else with the password (the thief of the phone, say) does not get the first-device setup.
    thief = Client()
    refused = thief.post(SIGN_IN, {"username": person.username, "password": PASSWORD})
    assert refused.status_code == 200 and "reported lost" in text(refused)
    assert thief.get("/enroll/").status_code == 302  # not signed in
    assert events("signin.setup_held", subject=person).count() == 1

    # The help desk checks who is calling and lifts the hold (audited): then the password opens the setup.
    desk = make_user("desk1", is_staff=True)
    identity_services.unlock_user(person, actor=desk, reason="INC-7, photo ID checked in person")
    assert events("account.unlocked").get().details["released_setup_hold"] is True
    response = Client().post(SIGN_IN, {"username": person.username, "password": PASSWORD})
    assert response["Location"] == "/enroll/"


def test_bnd02_lost_the_phone_but_kept_the_number(person, phone_with_texts, clock, recording_gateway, sending):
    """Sign in with a text to the kept number, then move the app to the new phone and confirm it from there."""
    mobile = phone_with_texts
    old = mobile.app_device
    texts = mobile.phone_device
    browser = Client()
    browser.post(SIGN_IN, {"username": person.username, "password": PASSWORD})
    with sending():
        browser.post(SECOND_FACTOR, {"send": f"{texts.persistent_id}|sms"})
    response = browser.post(
        SECOND_FACTOR, {"device": texts.persistent_id, "code": recording_gateway.last_to(MOBILE).code}
    )
    assert response.status_code == 302 and signed_in_with(browser) == texts.persistent_id

    assert start(browser, mobile, old_phone_lost="on")["Location"] == new_phone_url(mobile)
    page = browser.get(new_phone_url(mobile))
    new_phone = pyotp.TOTP(qr_secret(browser, mobile))
    assert page_secret(page) == new_phone.secret
    old.refresh_from_db()
    assert not old.confirmed  # the lost phone's app stopped at once

    response = confirm(browser, mobile, new_phone.now())

    assert response["Location"] == "/devices/"
    mobile.refresh_from_db()
    assert mobile.status == Registration.Status.ACTIVE and mobile.app_device.confirmed
    assert secret_b32(mobile.app_device) == new_phone.secret
    # The number keeps working for texts, and the new app signs in.
    assert offered_at_sign_in(person) == {mobile.app_device.persistent_id, texts.persistent_id}
    clock.tick(30)
    assert sign_in_with(Client(), person, mobile.app_device, new_phone.now()).status_code == 302


def test_bnd05_a_session_kept_open_after_the_loss_finishes_only_its_own_change(
    upgrading, person, phone_with_texts, sign_in, clock
):
    """Verified with the app just reported lost, the session may finish that change only: once the change is
    cancelled and begun again from another device, it sees nothing of the new secret."""
    phone = phone_with_texts
    tablet = add_app_device(person, kind="tablet")
    assert start(upgrading, phone, old_phone_lost="on")["Location"] == new_phone_url(phone)
    first = started(phone).pending_app_device
    assert page_secret(upgrading.get(new_phone_url(phone))) == secret_b32(first)
    other = Client()
    clock.tick(30)
    sign_in(other, person, tablet.app_device)
    other.post(new_phone_url(phone), {"action": "cancel"})
    assert start(other, phone)["Location"] == new_phone_url(phone)
    second = started(phone).pending_app_device

    response = upgrading.get(new_phone_url(phone))

    assert response.status_code == 302 and response["Location"].startswith(SIGN_IN)
    assert confirm(upgrading, phone, fresh_code(second))["Location"].startswith(SIGN_IN)
    assert started(phone).pending_app_device_id == second.pk
    assert not events("device.reactivated").exists()


def lose_and_move(person, phone, sign_in, clock):
    """Signed in with a tablet, the person starts moving ``phone``'s app with the old phone reported lost."""
    tablet = add_app_device(person, kind="tablet")
    browser = Client()
    clock.tick(30)
    sign_in(browser, person, tablet.app_device)
    assert start(browser, phone, old_phone_lost="on")["Location"] == new_phone_url(phone)
    assert not AuthenticatorAppDevice.objects.get(pk=phone.app_device_id).confirmed
    return browser


def cancel(browser, registration) -> str:
    """Cancel the change; returns the page it leads to, with what it says."""
    response = browser.post(new_phone_url(registration), {"action": "cancel"})
    assert response.status_code == 302 and response["Location"] == "/devices/"
    return text(browser.get("/devices/"))


def test_act06_cancelling_a_change_says_the_old_phone_still_works(upgrading, phone):
    start(upgrading, phone)
    assert "Phone change cancelled. " + errors.OLD_PHONE_WORKS in cancel(upgrading, phone)


def test_bnd05_cancelling_after_the_loss_says_the_old_app_stays_off(person, phone_with_texts, sign_in, clock):
    browser = lose_and_move(person, phone_with_texts, sign_in, clock)

    page = cancel(browser, phone_with_texts)

    assert errors.OLD_APP_OFF_TEXTS_WORK.format(number=phone_with_texts.masked_phone_number) in page
    assert errors.OLD_PHONE_WORKS not in page
    phone_with_texts.refresh_from_db()
    assert phone_with_texts.status == Registration.Status.ACTIVE and not phone_with_texts.app_device.confirmed


def test_bnd05_cancelling_after_the_loss_of_a_phone_without_texts_says_it_no_longer_signs_in(
    person, phone, sign_in, clock
):
    browser = lose_and_move(person, phone, sign_in, clock)

    page = cancel(browser, phone)

    assert errors.OLD_APP_OFF.format(device=phone.display_name) in page and errors.OLD_PHONE_WORKS not in page
    phone.refresh_from_db()
    assert phone.status == Registration.Status.RETIRED


def test_bnd05_an_expired_change_after_the_loss_says_the_old_app_stays_off(person, phone, sign_in, clock):
    browser = lose_and_move(person, phone, sign_in, clock)
    clock.tick(settings.ACTIVATION_LINK_TTL.total_seconds() + 1)
    sign_in(browser, person, Registration.objects.get(user=person, kind="tablet").app_device)

    response = browser.get(new_phone_url(phone))

    assert response["Location"] == "/devices/"
    page = text(browser.get("/devices/"))
    off = errors.OLD_APP_OFF.format(device=phone.display_name)
    assert errors.REACTIVATION_EXPIRED_OLD_APP_OFF.format(old_phone=off) in page
    assert errors.REACTIVATION_EXPIRED not in page
    refused = confirm(browser, phone, "123456")
    assert refused["Location"] == "/devices/"
    assert errors.REACTIVATION_EXPIRED_OLD_APP_OFF.format(old_phone=off) in text(browser.get("/devices/"))
    assert Registration.objects.get(pk=phone.pk).status == Registration.Status.RETIRED


# --- AC-01: only one's own devices ----------------------------------------------------------------------------


def test_ac01_another_persons_device_cannot_be_moved_or_reported_lost(client, person, phone, make_user, sign_in):
    other = make_user("bystander")
    theirs = services.start_reactivation(add_app_device(other, kind="tablet"), actor=other, verified_at=timezone.now())
    their_old, their_new = theirs.app_device, theirs.pending_app_device
    sign_in(client, person, phone.app_device)

    requests = [
        ("get", new_phone_url(theirs), {}),
        ("post", new_phone_url(theirs), {"action": "start", "old_phone_lost": "on"}),
        ("post", new_phone_url(theirs), {"action": "confirm", "code": fresh_code(their_new)}),
        ("post", new_phone_url(theirs), {"action": "cancel"}),
        ("get", f"/enroll/{theirs.pk}/qr.svg", {}),
        ("post", f"/enroll/{theirs.pk}/email-link/", {}),
        ("get", f"/devices/{theirs.pk}/lost/", {}),
        ("post", f"/devices/{theirs.pk}/lost/", {}),
    ]
    for method, url, data in requests:
        assert getattr(client, method)(url, data).status_code == 404, url

    theirs.refresh_from_db()
    their_old.refresh_from_db()
    their_new.refresh_from_db()
    assert theirs.status == Registration.Status.REACTIVATING
    assert theirs.app_device_id == their_old.pk and theirs.pending_app_device_id == their_new.pk
    assert their_old.confirmed and their_old.encrypted_secret and not their_new.confirmed
    assert not ActivationLink.objects.exists()
    assert events("device.reactivation_started").count() == 1
    assert not events("device.reported_lost").exists() and not events("device.reactivated").exists()
    assert not events("device.reactivation_ended").exists()


def test_bnd05_an_old_phone_lost_after_the_change_began_stops_at_once(upgrading, person, phone, mailoutbox):
    """The change is under way (begun with the old phone at hand); then the old phone is lost: the page still
    offers to stop it, and stopping it keeps the change, which this session (verified with that app) finishes."""
    start(upgrading, phone)
    new = started(phone).pending_app_device
    page = text(upgrading.get(new_phone_url(phone)))
    assert "My old phone is lost or stolen: stop its codes now" in page

    response = start(upgrading, phone, old_phone_lost="on")

    assert response["Location"] == new_phone_url(phone)
    page = upgrading.get(new_phone_url(phone))
    assert errors.OLD_APP_STOPPED in text(page)
    assert "stop its codes now" not in text(page)  # nothing left to stop
    app = AuthenticatorAppDevice.objects.get(pk=phone.app_device_id)
    assert not app.confirmed and app.encrypted_secret == ""
    assert started(phone).pending_app_device_id == new.pk  # the same change goes on
    assert details_of(events("device.old_phone_stopped").get()) == {"registration": phone.pk}
    assert OutboundMessage.objects.filter(template="notice:device.reported_lost").count() == 1
    refused = Client().post(SIGN_IN, {"username": person.username, "password": PASSWORD})
    assert refused.status_code == 200 and "reported lost" in text(refused)  # the setup is held: no factor left

    # Ticked again (a stale tab) it changes nothing more.
    start(upgrading, phone, old_phone_lost="on")
    assert events("device.old_phone_stopped").count() == 1

    assert confirm(upgrading, phone, fresh_code(new))["Location"] == "/devices/"
    phone.refresh_from_db()
    assert phone.status == Registration.Status.ACTIVE and phone.app_device_id == new.pk
