"""Numbers never texted or called, turning on texts and calls, and another person's registration."""

import json
import re

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_otp import devices_for_user

from devices import errors, services
from devices.models import PhoneVerification, Registration
from identity.models import AuditEvent
from testsupport import details_of, fresh_code

from .helpers import (
    MASKED,
    NUMBER,
    OTHER_NUMBER,
    a_wrong_code,
    add_app_device,
    ask_for_code,
    enter_code,
    enter_number,
    events,
    finish_app_steps,
    nothing_queued,
    pending_landline,
    put_on_record,
    second_factor_page,
    text,
    verify_url,
)

pytestmark = pytest.mark.django_db

# --- Numbers we never text or call (SMS-07) --------------------------------------------------------


def test_sms07_landline_in_a_country_not_allowed_is_refused_at_the_phone_step(wizard, settings, recording_gateway):
    assert settings.PHONE_ALLOWED_REGIONS == ["US"]
    registration, response = enter_number(wizard, "landline", "+44 20 7946 0958")

    assert response.status_code == 200
    assert errors.PHONE_COUNTRY_NOT_ALLOWED in text(response)
    registration.refresh_from_db()
    assert not registration.phone_number
    assert not events("enrollment.phone_entered").exists()
    assert nothing_queued()
    assert wizard.get(verify_url(registration))["Location"] == f"/enroll/{registration.pk}/phone/"


@pytest.mark.parametrize("kind", ["mobile", "landline"])
@pytest.mark.parametrize(("number", "what"), [("+1 900 234 5678", "premium-rate"), ("+1 800 234 5678", "toll-free")])
def test_sms07_premium_rate_and_toll_free_numbers_are_refused(wizard, recording_gateway, kind, number, what):
    registration, response = enter_number(wizard, kind, number)

    assert response.status_code == 200
    assert f"We cannot text or call a {what} number. Use a personal mobile or desk phone number." in text(response)
    registration.refresh_from_db()
    assert not registration.phone_number
    assert nothing_queued() and not recording_gateway.delivered


def test_sms07_send_refuses_a_number_stored_before_the_rules_changed(person, settings, recording_gateway):
    registration = pending_landline(person)
    settings.PHONE_ALLOWED_REGIONS = ["CA"]

    with pytest.raises(ValidationError) as refused:
        services.send_phone_code(registration, channel="voice", actor=person)

    assert refused.value.messages == [errors.PHONE_COUNTRY_NOT_ALLOWED]
    assert nothing_queued()


def test_sms07_mobile_abroad_is_fine_for_the_app_but_gets_no_codes(wizard, person, clock, recording_gateway, sending):
    registration, response = enter_number(wizard, "mobile", "+44 7400 123456")
    assert response["Location"] == f"/enroll/{registration.pk}/platform/"
    registration = finish_app_steps(wizard, registration)
    assert registration.status == Registration.Status.ACTIVE

    page = text(ask_for_code(wizard, f"/devices/{registration.pk}/phone-codes/", "sms", sending))

    assert errors.PHONE_COUNTRY_NOT_ALLOWED in page
    assert nothing_queued() and not recording_gateway.delivered
    assert "|sms" not in second_factor_page(person)


def test_sms07_a_mobile_abroad_only_typed_elsewhere_goes_on_to_the_app(wizard, person, other):
    """A phone with an app may be abroad; a number no one proved here asks no check, so the country is no bar."""
    put_on_record(other, "+447400123456", "pending")

    registration, response = enter_number(wizard, "mobile", "+44 7400 123456")

    assert response["Location"] == f"/enroll/{registration.pk}/platform/"
    assert wizard.get(f"/enroll/{registration.pk}/platform/").status_code == 200


def test_sms07_a_mobile_abroad_on_record_is_refused_in_words_not_sent_to_a_check_it_cannot_pass(
    wizard, person, other, clock, recording_gateway
):
    """Another person's phone abroad has this number: it must be checked, and it cannot be texted or called, so
    the number is refused at the phone step with the reason, instead of a check that can never be done."""
    put_on_record(other, "+447400123456", "active")

    registration, response = enter_number(wizard, "mobile", "+44 7400 123456")

    assert response.status_code == 200
    assert errors.PHONE_ON_RECORD_UNREACHABLE in text(response)
    registration.refresh_from_db()
    assert not registration.phone_number
    assert not PhoneVerification.objects.filter(user=person).exists() and not recording_gateway.delivered
    with pytest.raises(ValidationError) as refused:
        services.set_phone_number(registration, phone_number="+447400123456", actor=person, verified_at=timezone.now())
    assert refused.value.messages == [errors.PHONE_ON_RECORD_UNREACHABLE]


# --- Turning on texts and calls, and changing the number (SMS-08) -----------------------------------


@pytest.fixture
def app_phone(person, enroll, clock):
    """``person`` with an active mobile whose app is set up, texts and calls not turned on."""
    return enroll(person, number=NUMBER)


def test_sms08_number_is_not_offered_at_sign_in_before_a_code_to_it_was_entered(person, app_phone):
    assert app_phone.phone_verified_at is None and app_phone.phone_device_id is None
    page = second_factor_page(person)
    assert 'name="send"' not in page and MASKED not in page


def test_sms08_turning_on_texts_and_calls_needs_a_recent_second_factor_and_a_code_to_the_number(
    client, person, app_phone, sign_in, clock, recording_gateway, sending
):
    sign_in(client, person, app_phone.app_device)
    url = f"/devices/{app_phone.pk}/phone-codes/"
    assert client.get(url).status_code == 200
    clock.tick(301)  # the second factor of this session is older than REAUTH_MAX_AGE_SECONDS

    response = client.post(url, {"action": "send", "channel": "sms"})

    assert response["Location"] == "/account/sign-in/confirm/?next=" + url.replace("/", "%2F")
    assert nothing_queued()

    app = app_phone.app_device
    response = client.post(response["Location"], {"device": app.persistent_id, "code": fresh_code(app)})
    assert response["Location"] == url
    page = text(ask_for_code(client, url, "sms", sending))
    assert f"We texted {MASKED} with a 6-digit code." in page
    assert "|sms" not in second_factor_page(person)  # a code on its way is not yet a factor

    response = client.post(url, {"action": "confirm", "code": recording_gateway.last_to(NUMBER).code}, follow=True)

    assert response.redirect_chain[-1][0] == "/devices/"
    assert f"Codes by text and call to {MASKED} are on." in text(response)
    app_phone.refresh_from_db()
    phone = app_phone.phone_device
    assert app_phone.phone_verified_at and phone.confirmed and phone.can_text and str(phone.number) == NUMBER
    bound = events("device.bound", subject=person).order_by("-id").first()
    assert details_of(bound) == {"registration": app_phone.pk, "kind": "mobile", "factor": "phone"}
    page = second_factor_page(person)
    assert f'value="{phone.persistent_id}|sms"' in page and f'value="{phone.persistent_id}|voice"' in page
    # Once on, there is nothing more to turn on.
    assert client.get(url)["Location"] == "/devices/"


def test_sms08_wrong_code_does_not_turn_on_texts(client, person, app_phone, sign_in, recording_gateway, sending):
    sign_in(client, person, app_phone.app_device)
    url = f"/devices/{app_phone.pk}/phone-codes/"
    ask_for_code(client, url, "voice", sending)
    code = recording_gateway.last_to(NUMBER).code

    response = client.post(url, {"action": "confirm", "code": a_wrong_code(code)})

    assert response.status_code == 200 and errors.PHONE_WRONG_CODE in text(response)
    app_phone.refresh_from_db()
    assert app_phone.phone_verified_at is None and app_phone.phone_device_id is None
    assert 'name="send"' not in second_factor_page(person)


def test_sms08_tablet_and_retired_devices_have_no_phone_codes_page(person, app_phone, client, sign_in):
    tablet = add_app_device(person, kind="tablet")
    services.retire_registration(app_phone, actor=person, verified_at=timezone.now())
    sign_in(client, person, tablet.app_device)
    assert client.get(f"/devices/{tablet.pk}/phone-codes/").status_code == 404
    assert client.post(f"/devices/{app_phone.pk}/phone-codes/", {"action": "send", "channel": "sms"}).status_code == 404
    assert nothing_queued()


def test_sms08_changing_the_number_of_a_pending_registration_resets_its_check(
    wizard, person, other, make_user, clock, recording_gateway, sending
):
    put_on_record(other, NUMBER, "active")
    put_on_record(make_user("ewhite"), OTHER_NUMBER, "active")
    registration, _ = enter_number(wizard, "mobile", NUMBER)
    url = verify_url(registration)
    ask_for_code(wizard, url, "sms", sending)
    assert enter_code(wizard, url, recording_gateway.last_to(NUMBER).code)["Location"].endswith("/platform/")

    response = wizard.post(
        f"/enroll/{registration.pk}/phone/", {"phone_number": OTHER_NUMBER, "number_is_correct": "on"}
    )

    assert response["Location"] == url
    registration.refresh_from_db()
    assert registration.phone_verified_at is None and registration.phone_device_id is None
    assert wizard.get(f"/enroll/{registration.pk}/platform/")["Location"] == url

    # A code on its way to the number being replaced proves nothing about the next one.
    clock.tick(61)
    ask_for_code(wizard, url, "sms", sending)
    wizard.post(f"/enroll/{registration.pk}/phone/", {"phone_number": NUMBER, "number_is_correct": "on"})
    assert not PhoneVerification.objects.filter(registration=registration, superseded_at=None, consumed_at=None)
    refused = enter_code(wizard, url, recording_gateway.last_to(OTHER_NUMBER).code)
    assert errors.PHONE_NO_OPEN_CODE in text(refused)
    registration.refresh_from_db()
    assert registration.phone_verified_at is None


def test_sms08_a_number_proven_and_then_replaced_is_never_offered_at_sign_in(
    wizard, person, other, clock, recording_gateway, sending
):
    put_on_record(other, NUMBER, "active")
    registration, _ = enter_number(wizard, "mobile", NUMBER)
    ask_for_code(wizard, verify_url(registration), "sms", sending)
    enter_code(wizard, verify_url(registration), recording_gateway.last_to(NUMBER).code)
    # Changed to a number new here: no check, and no proof of it.
    response = wizard.post(
        f"/enroll/{registration.pk}/phone/", {"phone_number": OTHER_NUMBER, "number_is_correct": "on"}
    )
    assert response["Location"] == f"/enroll/{registration.pk}/platform/"

    registration = finish_app_steps(wizard, registration)

    assert registration.phone_verified_at is None
    assert [type(d).__name__ for d in devices_for_user(person, confirmed=True)] == ["AuthenticatorAppDevice"]
    page = second_factor_page(person)
    assert 'name="send"' not in page and MASKED not in page


# --- Another person's registration (AC-01) and audit events (AC-06) ----------------------------------


def test_ac01_another_persons_registration_gives_404_and_sends_nothing(
    client, person, other, sign_in, enroll, recording_gateway, sending
):
    theirs_pending = pending_landline(other)
    theirs_active = enroll(other, number=OTHER_NUMBER)
    sign_in(client, person)

    for url in (verify_url(theirs_pending), f"/devices/{theirs_active.pk}/phone-codes/"):
        assert client.get(url).status_code == 404
        with sending():
            assert client.post(url, {"action": "send", "channel": "voice"}).status_code == 404
        assert client.post(url, {"action": "confirm", "code": "123456"}).status_code == 404

    assert nothing_queued() and not recording_gateway.delivered
    assert not events("phone.code_sent").exists() and not events("phone.code_rejected").exists()


def test_ac06_phone_events_are_written_without_codes(wizard, person, other, clock, recording_gateway, sending):
    put_on_record(other, NUMBER, "active")
    registration, _ = enter_number(wizard, "mobile", NUMBER)
    url = verify_url(registration)
    ask_for_code(wizard, url, "sms", sending)
    code = recording_gateway.last_to(NUMBER).code
    enter_code(wizard, url, a_wrong_code(code))
    enter_code(wizard, url, code)
    registration = finish_app_steps(wizard, registration)
    clock.tick(61)
    landline = pending_landline(person, OTHER_NUMBER)
    with sending():
        services.send_phone_code(landline, channel="voice", actor=person)
    landline_code = recording_gateway.last_to(OTHER_NUMBER).code
    services.confirm_phone_code(landline, code=landline_code, actor=person, verified_at=timezone.now())

    sent = events("phone.code_sent", subject=person).order_by("id")
    assert [details_of(e) for e in sent] == [
        {"registration": registration.pk, "channel": "sms", "purpose": "ownership", "phone": MASKED},
        {"registration": landline.pk, "channel": "voice", "purpose": "ownership", "phone": "+1********77"},
    ]
    rejected = events("phone.code_rejected", subject=person).get()
    assert details_of(rejected) == {"registration": registration.pk, "attempts": 1}
    verified = events("phone.verified", subject=person).order_by("id")
    assert [(e.details["registration"], e.details["channel"]) for e in verified] == [
        (registration.pk, "sms"),
        (landline.pk, "voice"),
    ]
    bound = events("device.bound", subject=person).order_by("id")
    # Activating the app also binds the texts and calls proven in the wizard: one event per factor.
    assert [(e.details["registration"], e.details["factor"]) for e in bound] == [
        (registration.pk, "authenticator_app"),
        (registration.pk, "phone"),
        (landline.pk, "phone"),
    ]
    for event in AuditEvent.objects.filter(subject=person):
        details = json.dumps(event.details)
        assert code not in details and landline_code not in details
        assert NUMBER not in details and OTHER_NUMBER not in details


def test_a_refused_number_is_tied_to_the_number_field(wizard, person):
    """Refused by the site (not by the form's shape), the reason is still said beside the field: marked invalid,
    described by the reason, and focused, as a screen reader and a keyboard expect."""
    registration, response = enter_number(wizard, "landline", "+44 20 7946 0958")

    assert response.status_code == 200
    page = text(response)
    assert 'class="error-summary"' not in page
    assert re.search(r'<div class="error" id="id_phone_number_error"><p>([^<]+)</p>', page).group(1) == (
        errors.PHONE_COUNTRY_NOT_ALLOWED
    )
    field = re.search(r'<input[^>]*name="phone_number"[^>]*>', page).group()
    assert 'aria-invalid="true"' in field and "autofocus" in field
    assert "id_phone_number_error" in re.search(r'aria-describedby="([^"]*)"', field).group(1)
