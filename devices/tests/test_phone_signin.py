"""Signing in with a code by text or by call, through the real views: the codes are read back from the
recording gateway, as the person would read them from the phone (SMS-02, OTP-01 across channels, REL-07)."""

import re
import socket
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core.cache import caches
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY

from devices import errors, services
from devices.gateways import spoken_twiml
from devices.models import OutboundMessage, PhoneVerification
from devices.tests.fakes import RecordingGateway
from identity import errors as identity_errors
from testsupport import details_of, wrong_code

from .helpers import events, text

pytestmark = pytest.mark.django_db

MOBILE = "+16175550188"
MOBILE_MASKED = "+1********88"
LANDLINE = "+16175550199"
LANDLINE_MASKED = "+1********99"
SIGN_IN = "/account/sign-in/"
SECOND_FACTOR = "/account/sign-in/second-factor/"


@pytest.fixture(autouse=True)
def _no_back_off(settings):
    # django-otp's back-off (1, 2, 4... s after each failure) would refuse the next attempt unseen under a
    # frozen clock; these tests count failures, the back-off is tested with the app codes in identity.
    settings.OTP_TOTP_THROTTLE_FACTOR = 0


@pytest.fixture
def sending(django_capture_on_commit_callbacks):
    """Run what a request queued as its commit would: the send task, in-process, into the recording gateway."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def turn_on_phone_codes(registration, person, gateway, sending):
    with sending():
        services.send_phone_code(registration, channel="voice", actor=person, verified_at=timezone.now())
    return services.confirm_phone_code(
        registration,
        code=gateway.last_to(str(registration.phone_number)).code,
        actor=person,
        verified_at=timezone.now(),
    )


@pytest.fixture
def mobile(person, enroll, clock, recording_gateway, sending):
    """``person``'s mobile: the app, and codes by text and call turned on. Time is frozen."""
    registration = enroll(person, number=MOBILE)
    registration = turn_on_phone_codes(registration, person, recording_gateway, sending)
    registration.refresh_from_db()
    assert registration.phone_device.confirmed
    clock.tick(61)  # the next send is not held back by the one that turned texts on
    recording_gateway.delivered.clear()
    return registration


@pytest.fixture
def landline(person, clock, recording_gateway, sending):
    """``person``'s only device: a landline, proven by a call in the wizard. Time is frozen."""
    registration = services.start_enrollment(person, kind="landline", verified_at=timezone.now())
    registration = services.set_phone_number(
        registration, phone_number=LANDLINE, actor=person, verified_at=timezone.now()
    )
    registration = turn_on_phone_codes(registration, person, recording_gateway, sending)
    registration.refresh_from_db()
    clock.tick(61)
    recording_gateway.delivered.clear()
    return registration


def enter_password(client, person, password):
    response = client.post(SIGN_IN, {"username": person.username, "password": password})
    assert response["Location"] == SECOND_FACTOR
    return response


def ask_for_code(client, device, channel, sending):
    with sending():
        return client.post(SECOND_FACTOR, {"send": f"{device.persistent_id}|{channel}"}, follow=True)


def enter_code(client, device, code):
    return client.post(SECOND_FACTOR, {"device": device.persistent_id, "code": code})


def a_wrong_code(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def signed_in_with(client):
    return client.session.get(DEVICE_ID_SESSION_KEY)


def signin_codes():
    return PhoneVerification.objects.filter(purpose=PhoneVerification.Purpose.SIGNIN)


# --- Texts and calls ------------------------------------------------------------------------


def test_the_code_lifetime_a_person_reads_comes_from_the_setting(
    client, person, password, mobile, recording_gateway, sending, settings
):
    settings.PHONE_CODE_TTL = timedelta(minutes=5)
    enter_password(client, person, password)
    page = text(ask_for_code(client, mobile.phone_device, "sms", sending))
    assert f"We texted {MOBILE_MASKED} with a 6-digit code. It works once, for 5 minutes." in page
    (sms,) = recording_gateway.delivered
    assert "It expires in 5 minutes." in sms.text


def test_sign_in_by_text_message(client, person, password, mobile, recording_gateway, sending):
    phone = mobile.phone_device
    enter_password(client, person, password)
    page = text(client.get(SECOND_FACTOR))
    assert f'value="{phone.persistent_id}|sms"' in page and f'value="{phone.persistent_id}|voice"' in page
    assert f"Text {MOBILE_MASKED}" in page and f"Call {MOBILE_MASKED}" in page
    assert f'value="{mobile.app_device.persistent_id}|' not in page  # the app gets no "send me" button

    response = ask_for_code(client, phone, "sms", sending)

    assert response.status_code == 200
    page = text(response)
    assert f"We texted {MOBILE_MASKED} with a 6-digit code. It works once, for 10 minutes." in page
    (sms,) = recording_gateway.delivered
    assert (sms.channel, sms.number) == ("sms", MOBILE)
    assert re.fullmatch(rf"{sms.code} is your {django_settings.INSTITUTION_NAME} verification code\. .*", sms.text)
    # Only what it must: no name, no account, no link.
    for word in (person.username, person.first_name, person.last_name, "http"):
        assert word not in sms.text
    assert sms.code not in page

    response = enter_code(client, phone, sms.code)

    assert response.status_code == 302 and response["Location"] == "/devices/"
    assert signed_in_with(client) == phone.persistent_id
    assert client.get("/devices/").status_code == 200
    assert details_of(events("signin.code_sent", subject=person).get()) == {
        "device": phone.persistent_id,
        "channel": "sms",
        "phone": MOBILE_MASKED,
    }
    assert events("signin.second_factor_ok", subject=person).get().details["factor"] == "phone"


def test_sign_in_by_voice_call_reads_the_digits_one_by_one_and_twice(
    client, person, password, mobile, recording_gateway, sending
):
    phone = mobile.phone_device
    enter_password(client, person, password)

    page = text(ask_for_code(client, phone, "voice", sending))

    assert f"We are calling {MOBILE_MASKED} with a 6-digit code." in page
    (call,) = recording_gateway.delivered
    assert (call.channel, call.number) == ("voice", MOBILE)
    spoken = ", ".join(call.code)  # "1, 2, 3, 4, 5, 6": read digit by digit, not "one hundred twenty-three..."
    assert spoken in call.text and call.code not in call.text
    twiml = spoken_twiml(call.text)
    assert twiml.count("<Say") == 2 and twiml.count(spoken) == 2 and "<Pause" in twiml

    response = enter_code(client, phone, call.code)

    assert response["Location"] == "/devices/"
    assert signed_in_with(client) == phone.persistent_id


def test_sms02_replayed_sign_in_code_is_refused(client, person, password, mobile, recording_gateway, sending):
    phone = mobile.phone_device
    enter_password(client, person, password)
    ask_for_code(client, phone, "sms", sending)
    code = recording_gateway.last_to(MOBILE).code
    assert enter_code(client, phone, code)["Location"] == "/devices/"
    client.post("/account/sign-out/")
    enter_password(client, person, password)

    response = enter_code(client, phone, code)

    assert response.status_code == 200
    assert identity_errors.WRONG_CODE in text(response)
    assert signed_in_with(client) is None
    person.refresh_from_db()
    assert person.second_factor_failures == 1


def test_sms02_sign_in_code_expires_after_ten_minutes(
    client, person, password, mobile, clock, recording_gateway, sending
):
    phone = mobile.phone_device
    enter_password(client, person, password)
    ask_for_code(client, phone, "sms", sending)
    code = recording_gateway.last_to(MOBILE).code
    clock.tick(9 * 60)
    enter_password(client, person, password)  # the password step itself lasts at most 10 minutes (SES-02)
    clock.tick(60 + 1)

    response = enter_code(client, phone, code)

    assert response.status_code == 200 and identity_errors.WRONG_CODE in text(response)
    assert signed_in_with(client) is None


def test_sms02_code_for_one_device_does_not_work_for_another(
    client, person, password, mobile, landline, recording_gateway, sending
):
    enter_password(client, person, password)
    ask_for_code(client, landline.phone_device, "voice", sending)
    code = recording_gateway.last_to(LANDLINE).code

    response = enter_code(client, mobile.phone_device, code)

    assert response.status_code == 200 and signed_in_with(client) is None
    assert enter_code(client, landline.phone_device, code)["Location"] == "/devices/"


def test_code_is_not_sent_to_a_locked_account(client, person, password, mobile, recording_gateway, sending):
    app = mobile.app_device
    enter_password(client, person, password)
    for _ in range(django_settings.LOCKOUT_THRESHOLD):
        enter_code(client, app, wrong_code(app))
    person.refresh_from_db()
    assert person.is_locked

    response = ask_for_code(client, mobile.phone_device, "sms", sending)

    assert identity_errors.ACCOUNT_LOCKED.format(help_desk=django_settings.HELP_DESK_CONTACT) in text(response)
    assert not signin_codes().exists() and not recording_gateway.delivered
    assert not events("signin.code_sent").exists()
    # Not by any other way in either.
    with pytest.raises(ValidationError) as refused:
        services.send_signin_code(mobile.phone_device, channel="voice")
    assert refused.value.code == "locked"
    assert not signin_codes().exists()


def test_landline_offers_only_a_call(client, person, password, landline, recording_gateway, sending):
    phone = landline.phone_device
    enter_password(client, person, password)
    page = text(client.get(SECOND_FACTOR))
    assert f'value="{phone.persistent_id}|voice"' in page and f"Call {LANDLINE_MASKED}" in page
    assert "|sms" not in page and "Text " not in page

    refused = ask_for_code(client, phone, "sms", sending)

    assert identity_errors.NO_SUCH_DEVICE in text(refused)
    assert not signin_codes().exists() and not recording_gateway.delivered

    ask_for_code(client, phone, "voice", sending)
    call = recording_gateway.last_to(LANDLINE)
    assert call.channel == "voice"
    assert enter_code(client, phone, call.code)["Location"] == "/devices/"


def test_sign_in_code_goes_only_to_the_device_chosen(client, person, password, mobile, make_user, enroll, sending):
    stranger = make_user("zz9999")
    theirs = enroll(stranger, number="+16175550111")
    theirs = turn_on_phone_codes(theirs, stranger, RecordingGateway, sending)
    RecordingGateway.delivered.clear()
    enter_password(client, person, password)

    with sending():
        response = client.post(SECOND_FACTOR, {"send": f"{theirs.phone_device.persistent_id}|sms"}, follow=True)

    assert identity_errors.NO_SUCH_DEVICE in text(response)
    assert not signin_codes().exists() and not RecordingGateway.delivered


# --- OTP-01: one count over every factor -------------------------------------------------------------


def test_otp01_failures_by_app_and_phone_codes_lock_together(
    client, person, password, mobile, recording_gateway, sending
):
    app, phone = mobile.app_device, mobile.phone_device
    enter_password(client, person, password)
    for _ in range(6):
        enter_code(client, app, wrong_code(app))
    ask_for_code(client, phone, "sms", sending)
    code = recording_gateway.last_to(MOBILE).code
    for _ in range(3):
        enter_code(client, phone, a_wrong_code(code))
    person.refresh_from_db()
    assert person.second_factor_failures == 9 and not person.is_locked

    tenth = enter_code(client, phone, a_wrong_code(code))

    person.refresh_from_db()
    assert person.is_locked
    assert identity_errors.ACCOUNT_LOCKED.format(help_desk=django_settings.HELP_DESK_CONTACT) in text(tenth)
    factors = [e.details["factor"] for e in events("signin.second_factor_failed", subject=person).order_by("id")]
    assert factors == ["authenticator_app"] * 6 + ["phone"] * 4
    # The phone code is still open (4 of 5 tries), yet the lock refuses it.
    response = enter_code(client, phone, code)
    assert response.status_code == 200 and signed_in_with(client) is None
    assert events("signin.refused_locked", subject=person).count() == 1


def test_otp01_asking_for_a_new_code_does_not_reset_the_count(
    client, person, password, mobile, clock, recording_gateway, sending
):
    phone = mobile.phone_device
    enter_password(client, person, password)
    for _ in range(3):
        ask_for_code(client, phone, "sms", sending)
        code = recording_gateway.last_to(MOBILE).code
        for _ in range(3):
            enter_code(client, phone, a_wrong_code(code))
        clock.tick(61)
    person.refresh_from_db()
    assert person.second_factor_failures == 9

    ask_for_code(client, phone, "voice", sending)

    person.refresh_from_db()
    assert person.second_factor_failures == 9
    enter_code(client, phone, a_wrong_code(recording_gateway.last_to(MOBILE).code))
    person.refresh_from_db()
    assert person.is_locked


def test_otp01_success_by_phone_code_resets_the_count(client, person, password, mobile, recording_gateway, sending):
    app, phone = mobile.app_device, mobile.phone_device
    enter_password(client, person, password)
    for _ in range(9):
        enter_code(client, app, wrong_code(app))
    ask_for_code(client, phone, "sms", sending)

    response = enter_code(client, phone, recording_gateway.last_to(MOBILE).code)

    assert response["Location"] == "/devices/"
    person.refresh_from_db()
    assert person.second_factor_failures == 0 and not person.is_locked


def test_otp01_code_without_a_challenge_counts_as_a_failure(client, person, password, mobile):
    enter_password(client, person, password)

    response = enter_code(client, mobile.phone_device, "123456")

    assert response.status_code == 200 and signed_in_with(client) is None
    person.refresh_from_db()
    assert person.second_factor_failures == 1


# --- REL-07: a cache outage opens no door -----------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_rel07_sign_in_with_the_cache_unreachable_still_checks_the_second_factor_and_the_limits(
    client, person, password, mobile, settings, recording_gateway, sending
):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{_closed_port()}/0",
        }
    }
    with pytest.raises(Exception, match="(?i)connect"):
        caches["default"].get("anything")  # the cache really is down for this test
    phone = mobile.phone_device

    enter_password(client, person, password)
    assert client.get("/devices/")["Location"].startswith("/account/sign-in/")  # a password alone opens nothing
    ask_for_code(client, phone, "sms", sending)
    code = recording_gateway.last_to(MOBILE).code
    too_soon = ask_for_code(client, phone, "voice", sending)
    assert errors.PHONE_RESEND_TOO_SOON.format(seconds=60) in text(too_soon)
    assert len(recording_gateway.delivered) == 1 and signin_codes().count() == 1
    wrong = enter_code(client, phone, a_wrong_code(code))
    assert wrong.status_code == 200
    person.refresh_from_db()
    assert person.second_factor_failures == 1

    response = enter_code(client, phone, code)

    assert response["Location"] == "/devices/"
    assert client.get("/devices/").status_code == 200
    assert OutboundMessage.objects.filter(channel="sms", status="sent").count() == 1
