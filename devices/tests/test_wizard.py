"""Every step of the enrollment wizard through the test client, with the inputs people get wrong."""

import dataclasses
import re

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from devices import errors, kinds, services
from devices.models import AuthenticatorAppDevice, Registration
from identity import errors as identity_errors
from testsupport import fresh_code, race, totp_for

from .helpers import events, text, walk_to_activate


@pytest.fixture
def wizard_client(client, person, sign_in):
    sign_in(client, person)
    return client


def start_mobile(client) -> Registration:
    response = client.post("/enroll/device-type/", {"kind": "mobile"})
    assert response.status_code == 302
    registration = Registration.objects.get()
    assert response["Location"] == f"/enroll/{registration.pk}/phone/"
    return registration


# --- Start and device type ----------------------------------------------------------------


@pytest.mark.postgres
def test_a_double_click_on_the_device_type_starts_one_setup(transactional_db, make_user):
    """Two "Continue" at once: the second finds the first's pending setup instead of making another."""
    for attempt in range(12):  # a race lost one time in four would show (0.75**12 < 4 %)
        person = make_user(f"doubleclick{attempt}")

        def begin(person=person):
            return services.start_enrollment(person, kind="mobile", verified_at=timezone.now()).pk

        first, second = race(begin, begin)

        assert first == second, f"attempt {attempt}: two setups"
        assert Registration.objects.filter(user=person).count() == 1
        assert events("enrollment.started", subject=person).count() == 1


def test_person_without_device_lands_on_start_page(client, person, sign_in):
    response = sign_in(client, person)
    assert response["Location"] == "/enroll/"
    page = client.get("/enroll/")
    assert page.status_code == 200
    assert 'href="/enroll/device-type/"' in text(page)


def test_device_type_offers_every_kind(wizard_client):
    page = text(wizard_client.get("/enroll/device-type/"))
    for kind in ("mobile", "tablet", "landline", "security_key"):
        tag = re.search(rf'<input[^>]*value="{kind}"[^>]*>', page).group(0)
        assert "disabled" not in tag
    assert "not available yet" not in page


def test_device_type_refuses_unavailable_kind(wizard_client, person, monkeypatch):
    # Kinds are data: a kind switched off in the table is shown disabled and refused by the service.
    kind = "security_key"
    monkeypatch.setitem(kinds.KINDS, kind, dataclasses.replace(kinds.KINDS[kind], available=False))
    page = text(wizard_client.get("/enroll/device-type/"))
    assert "disabled" in re.search(r'<input[^>]*value="security_key"[^>]*>', page).group(0)
    assert "not available yet" in page
    response = wizard_client.post("/enroll/device-type/", {"kind": kind})
    assert response.status_code == 200
    assert errors.KIND_NOT_AVAILABLE in text(response)
    assert not Registration.objects.filter(user=person).exists()
    assert not events("enrollment.started").exists()


@pytest.mark.parametrize(
    ("kind", "message"), [("", "This field is required."), ("smartwatch", "Select a valid choice")]
)
def test_device_type_refuses_unknown_kind(wizard_client, person, kind, message):
    response = wizard_client.post("/enroll/device-type/", {"kind": kind})
    assert response.status_code == 200
    assert message in text(response)
    assert not Registration.objects.filter(user=person).exists()


def test_device_type_double_submit_keeps_one_pending_registration(wizard_client, person):
    first = wizard_client.post("/enroll/device-type/", {"kind": "mobile"})
    second = wizard_client.post("/enroll/device-type/", {"kind": "mobile"})
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    assert Registration.objects.filter(user=person, status="pending").count() == 1
    assert events("enrollment.started", subject=person).count() == 1


def test_tablet_skips_the_phone_step(wizard_client, person):
    response = wizard_client.post("/enroll/device-type/", {"kind": "tablet"})
    registration = Registration.objects.get(user=person)
    assert response["Location"] == f"/enroll/{registration.pk}/platform/"
    assert wizard_client.get(f"/enroll/{registration.pk}/phone/").status_code == 404


# --- Phone number ---------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["12345", "+1 555", "call me maybe", "0044 20 7946 0958"])
def test_phone_invalid_number_is_refused_with_a_clear_message(wizard_client, number):
    registration = start_mobile(wizard_client)
    response = wizard_client.post(
        f"/enroll/{registration.pk}/phone/", {"phone_number": number, "number_is_correct": "on"}
    )
    assert response.status_code == 200
    assert "That does not look like a valid phone number" in text(response)
    registration.refresh_from_db()
    assert not registration.phone_number
    assert not events("enrollment.phone_entered").exists()


def test_phone_empty_number_is_refused(wizard_client):
    registration = start_mobile(wizard_client)
    response = wizard_client.post(f"/enroll/{registration.pk}/phone/", {"phone_number": "", "number_is_correct": "on"})
    assert response.status_code == 200
    assert "Enter the phone number of this device." in text(response)
    registration.refresh_from_db()
    assert not registration.phone_number


def test_phone_needs_the_number_is_correct_checkbox(wizard_client):
    registration = start_mobile(wizard_client)
    response = wizard_client.post(f"/enroll/{registration.pk}/phone/", {"phone_number": "(617) 555-0123"})
    assert response.status_code == 200
    assert "Tick the box to confirm the number is correct." in text(response)
    registration.refresh_from_db()
    assert not registration.phone_number


@pytest.mark.parametrize(
    ("typed", "e164"),
    [
        ("(617) 555-0123", "+16175550123"),
        ("617.555.0123", "+16175550123"),
        ("1-617-555-0123", "+16175550123"),
        ("+1 617 555 0123", "+16175550123"),
        ("011 44 20 7946 0958", "+442079460958"),
        ("+44 (0)20 7946 0958", "+442079460958"),
        ("+33 6 12 34 56 78", "+33612345678"),
    ],
)
def test_phone_national_and_international_formats_are_stored_as_e164(wizard_client, typed, e164):
    registration = start_mobile(wizard_client)
    response = wizard_client.post(
        f"/enroll/{registration.pk}/phone/", {"phone_number": typed, "number_is_correct": "on"}
    )
    assert response.status_code == 302
    assert response["Location"] == f"/enroll/{registration.pk}/platform/"
    registration.refresh_from_db()
    assert str(registration.phone_number) == e164
    event = events("enrollment.phone_entered").get()
    # Only the masked number goes into the audit log.
    assert event.details["phone"] == e164[:2] + "*" * (len(e164) - 4) + e164[-2:]


def test_phone_reload_shows_the_stored_number(wizard_client):
    registration = start_mobile(wizard_client)
    wizard_client.post(
        f"/enroll/{registration.pk}/phone/", {"phone_number": "(617) 555-0123", "number_is_correct": "on"}
    )
    page = wizard_client.get(f"/enroll/{registration.pk}/phone/")
    assert page.status_code == 200
    assert re.search(
        r'name="phone_number"[^>]*value="\+16175550123"|value="\+16175550123"[^>]*name="phone_number"', text(page)
    )


def test_back_to_phone_and_change_number_keeps_later_steps(wizard_client):
    registration = start_mobile(wizard_client)
    url = f"/enroll/{registration.pk}/"
    wizard_client.post(url + "phone/", {"phone_number": "(617) 555-0123", "number_is_correct": "on"})
    wizard_client.post(url + "platform/", {"platform": "android"})
    response = wizard_client.post(url + "phone/", {"phone_number": "+44 20 7946 0958", "number_is_correct": "on"})
    assert response["Location"] == url + "install/"
    registration.refresh_from_db()
    assert (str(registration.phone_number), registration.platform) == ("+442079460958", "android")


# --- Platform and install -----------------------------------------------------------------------


def test_platform_unknown_value_is_refused(wizard_client):
    registration = start_mobile(wizard_client)
    url = f"/enroll/{registration.pk}/"
    wizard_client.post(url + "phone/", {"phone_number": "(617) 555-0123", "number_is_correct": "on"})
    for bad in ({"platform": "windows-phone"}, {"platform": ""}):
        response = wizard_client.post(url + "platform/", bad)
        assert response.status_code == 200
        assert "Choose iPhone, Android phone or Other." in text(response)
    registration.refresh_from_db()
    assert registration.platform == ""


def test_platform_reload_shows_the_chosen_platform(wizard_client):
    registration = start_mobile(wizard_client)
    url = f"/enroll/{registration.pk}/"
    wizard_client.post(url + "phone/", {"phone_number": "(617) 555-0123", "number_is_correct": "on"})
    wizard_client.post(url + "platform/", {"platform": "android"})
    page = text(wizard_client.get(url + "platform/"))
    checked = re.findall(r"<input[^>]*checked[^>]*>", page)
    assert len(checked) == 1 and 'value="android"' in checked[0]


@pytest.mark.parametrize(
    ("platform", "store"), [("iphone", "apps.apple.com"), ("android", "play.google.com"), ("other", "freeotp")]
)
def test_install_page_lists_apps_for_the_platform(wizard_client, platform, store):
    wizard_client.post("/enroll/device-type/", {"kind": "tablet"})
    registration = Registration.objects.get()
    url = f"/enroll/{registration.pk}/"
    wizard_client.post(url + "platform/", {"platform": platform})
    page = wizard_client.get(url + "install/")
    assert page.status_code == 200
    assert store in text(page)


def test_install_reload_does_not_issue_a_second_secret(wizard_client):
    registration = walk_to_activate(wizard_client, kind="tablet")
    secret = registration.app_device.encrypted_secret
    response = wizard_client.post(f"/enroll/{registration.pk}/install/")
    assert response["Location"] == f"/enroll/{registration.pk}/activate/"
    registration.refresh_from_db()
    assert AuthenticatorAppDevice.objects.count() == 1
    assert registration.app_device.encrypted_secret == secret
    assert events("enrollment.secret_issued").count() == 1


# --- Steps out of order ----------------------------------------------------------------------------


def test_steps_out_of_order_redirect_to_the_first_missing_step(wizard_client):
    registration = start_mobile(wizard_client)
    url = f"/enroll/{registration.pk}/"
    for step in ("platform/", "install/", "activate/"):
        response = wizard_client.get(url + step)
        assert response.status_code == 302 and response["Location"] == url + "phone/", step
    response = wizard_client.post(url + "install/")
    assert response["Location"] == url + "phone/"
    response = wizard_client.post(url + "activate/", {"code": "123456"})
    assert response["Location"] == url + "phone/"

    wizard_client.post(url + "phone/", {"phone_number": "(617) 555-0123", "number_is_correct": "on"})
    for step in ("install/", "activate/"):
        assert wizard_client.get(url + step)["Location"] == url + "platform/"
    wizard_client.post(url + "platform/", {"platform": "iphone"})
    assert wizard_client.get(url + "activate/")["Location"] == url + "install/"
    assert wizard_client.get(f"{url}done/")["Location"] == url + "install/"

    registration.refresh_from_db()
    assert registration.app_device is None and registration.status == "pending"
    assert wizard_client.get(url + "qr.svg").status_code == 404


def test_email_link_before_the_secret_exists_sends_nothing(wizard_client, mailoutbox):
    registration = start_mobile(wizard_client)
    response = wizard_client.post(f"/enroll/{registration.pk}/email-link/", follow=True)
    assert errors.STEP_OUT_OF_ORDER in text(response)
    assert mailoutbox == []
    assert not registration.activation_links.exists()


# --- Activation ------------------------------------------------------------------------------------------


def test_activate_page_shows_qr_and_manual_key(wizard_client):
    registration = walk_to_activate(wizard_client)
    page = text(wizard_client.get(f"/enroll/{registration.pk}/activate/"))
    assert f'src="/enroll/{registration.pk}/qr.svg"' in page
    key = totp_for(registration.app_device).secret
    grouped = " ".join(key[i : i + 4] for i in range(0, len(key), 4))
    assert grouped in page


def test_activation_wrong_code_keeps_registration_pending(wizard_client, clock):
    registration = walk_to_activate(wizard_client)
    valid = {totp_for(registration.app_device).at(clock().timestamp() + 30 * d) for d in (-1, 0, 1)}
    wrong = next(code for code in ("000000", "111111", "222222", "333333") if code not in valid)
    for bad in (wrong, "abcdef", "12345"):
        response = wizard_client.post(f"/enroll/{registration.pk}/activate/", {"code": bad}, follow=True)
        assert response.redirect_chain == [(f"/enroll/{registration.pk}/activate/", 302)]  # post/redirect/get
        assert response.status_code == 200
        clock.tick(60)  # past django-otp's back-off, so each attempt is really checked
    assert errors.WRONG_CODE in text(response)
    registration.refresh_from_db()
    assert registration.status == "pending"
    assert registration.app_device.confirmed is False
    assert events("enrollment.code_rejected").count() == 3
    assert not events("device.bound").exists()


def test_activation_code_right_after_a_wrong_one_is_throttled(wizard_client, clock):
    registration = walk_to_activate(wizard_client)
    wizard_client.post(f"/enroll/{registration.pk}/activate/", {"code": "000000x"})
    response = wizard_client.post(
        f"/enroll/{registration.pk}/activate/", {"code": fresh_code(registration.app_device)}, follow=True
    )
    assert response.status_code == 200
    # The one throttle message, saying how long; never "too many wrong codes" after a single miss.
    assert identity_errors.CODE_THROTTLED.format(wait="1 second") in text(response)
    assert "Too many" not in text(response)
    clock.tick(2)
    response = wizard_client.post(f"/enroll/{registration.pk}/activate/", {"code": fresh_code(registration.app_device)})
    assert response.status_code == 302


def test_activation_double_submit_lands_on_success_with_one_bind(wizard_client, person):
    registration = walk_to_activate(wizard_client)
    code = fresh_code(registration.app_device)
    first = wizard_client.post(f"/enroll/{registration.pk}/activate/", {"code": code})
    second = wizard_client.post(f"/enroll/{registration.pk}/activate/", {"code": code})
    done = f"/enroll/{registration.pk}/done/"
    assert (first.status_code, first["Location"]) == (302, done)
    assert (second.status_code, second["Location"]) == (302, done)
    registration.refresh_from_db()
    assert registration.status == "active" and registration.app_device.confirmed
    assert events("device.bound", subject=person).count() == 1


def test_success_page_offers_another_device_and_hides_the_secret(wizard_client):
    registration = walk_to_activate(wizard_client)
    key = totp_for(registration.app_device).secret
    wizard_client.post(f"/enroll/{registration.pk}/activate/", {"code": fresh_code(registration.app_device)})
    page = text(wizard_client.get(f"/enroll/{registration.pk}/done/"))
    assert "Add another device" in page and 'href="/enroll/device-type/"' in page
    # After confirmation the secret is never shown again.
    assert wizard_client.get(f"/enroll/{registration.pk}/activate/")["Location"] == f"/enroll/{registration.pk}/done/"
    assert key[:8] not in page
    assert wizard_client.get(f"/enroll/{registration.pk}/qr.svg").status_code == 404


def test_act04_expired_pending_registration_cannot_be_finished(client, person, sign_in, clock):
    sign_in(client, person)
    registration = walk_to_activate(client)
    device = registration.app_device
    clock.tick(settings.PENDING_REGISTRATION_TTL.total_seconds() + 1)
    sign_in(client, person)  # the session itself has expired by now

    url = f"/enroll/{registration.pk}/"
    for step in ("phone/", "platform/", "install/", "activate/"):
        response = client.get(url + step)
        assert response["Location"] == "/enroll/", step
    response = client.post(url + "activate/", {"code": fresh_code(device)}, follow=True)
    assert errors.PENDING_EXPIRED in text(response)
    assert client.get(url + "qr.svg").status_code == 404
    response = client.post(url + "email-link/", follow=True)
    assert errors.PENDING_EXPIRED in text(response)

    registration.refresh_from_db()
    device.refresh_from_db()
    assert registration.status == "pending" and not device.confirmed
    assert not events("device.bound").exists()
    # Starting again gives a new registration instead of reviving the expired one.
    client.post("/enroll/device-type/", {"kind": "mobile"})
    assert Registration.objects.filter(user=person).count() == 2


# --- SES-06 for the wizard ----------------------------------------------------------------------------------


def test_ses06_wizard_posts_need_a_csrf_token(person, password):
    client = Client(enforce_csrf_checks=True)
    page = text(client.get("/account/sign-in/"))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = client.post(
        "/account/sign-in/", {"username": person.username, "password": password, "csrfmiddlewaretoken": token}
    )
    assert response["Location"] == "/enroll/"
    assert client.post("/enroll/device-type/", {"kind": "mobile"}).status_code == 403
    assert not Registration.objects.exists()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', text(client.get("/enroll/device-type/"))).group(1)
    response = client.post("/enroll/device-type/", {"kind": "mobile", "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert Registration.objects.count() == 1


def test_ses06_wizard_gets_change_nothing(wizard_client):
    registration = start_mobile(wizard_client)
    url = f"/enroll/{registration.pk}/"
    wizard_client.post(url + "phone/", {"phone_number": "(617) 555-0123", "number_is_correct": "on"})
    wizard_client.post(url + "platform/", {"platform": "android"})
    assert wizard_client.get(url + "install/").status_code == 200
    registration.refresh_from_db()
    assert registration.app_device is None
    assert wizard_client.get(url + "email-link/").status_code == 405


def test_activation_refusal_redirects_so_back_and_reload_never_resubmit(wizard_client, clock):
    """A wrong code is refused after a redirect, so Back and reload never ask to resubmit the form; the refusal is
    shown on the field, once."""
    registration = walk_to_activate(wizard_client)
    url = f"/enroll/{registration.pk}/activate/"
    valid = {totp_for(registration.app_device).at(clock().timestamp() + 30 * d) for d in (-1, 0, 1)}
    wrong = next(code for code in ("000000", "111111", "222222", "333333") if code not in valid)

    refused = wizard_client.post(url, {"code": wrong})

    assert refused.status_code == 302 and refused["Location"] == url
    page = text(wizard_client.get(url))
    assert errors.WRONG_CODE in page and 'aria-invalid="true"' in page
    again = text(wizard_client.get(url))  # a reload is a GET: nothing resubmitted, the message shown once
    assert errors.WRONG_CODE not in again and 'aria-invalid="true"' not in again
    assert events("enrollment.code_rejected").count() == 1
    # A code of the wrong shape is refused the same way.
    assert wizard_client.post(url, {"code": "12ab"})["Location"] == url
    assert 'aria-invalid="true"' in text(wizard_client.get(url))
