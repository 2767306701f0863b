"""Proving a phone number: the wizard's ownership check, turning on codes by text and call, and the
rules every such code follows (SMS-02, SMS-07, SMS-08), through the real views.

The outside provider is the only fake: ``RecordingGateway`` keeps what would have been texted or
read out, and the send task runs in-process when the request's transaction commits.
"""

import hashlib
import json
import logging
import threading

import pytest
from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.utils import timezone
from django_otp import devices_for_user

from conftest import PASSWORD, fresh_code
from devices import errors, kinds, phone_codes, services
from devices.models import OutboundMessage, PhoneDevice, PhoneVerification, Registration
from devices.tests.fakes import RecordingGateway
from identity.models import AuditEvent

from .helpers import add_app_device, events, text

pytestmark = pytest.mark.django_db

NUMBER = "+16175550188"
MASKED = "+1********88"
OTHER_NUMBER = "+16175550177"
CODE_TTL_SECONDS = 10 * 60


@pytest.fixture
def recording_gateway(settings):
    settings.PHONE_GATEWAY = "devices.tests.fakes.RecordingGateway"
    RecordingGateway.delivered.clear()
    yield RecordingGateway
    RecordingGateway.delivered.clear()


@pytest.fixture
def sending(django_capture_on_commit_callbacks):
    """Run what a request queued as its commit would: the send task, in-process, into the recording gateway."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


@pytest.fixture
def wizard(client, person, sign_in):
    sign_in(client, person)
    return client


@pytest.fixture
def other(make_user):
    return make_user("bjones", first_name="Bob", last_name="Jones")


def verify_url(registration) -> str:
    return f"/enroll/{registration.pk}/verify-phone/"


def enter_number(client, kind: str, number: str):
    """Choose ``kind`` and type ``number`` in the wizard; returns (registration, response of the phone step)."""
    response = client.post("/enroll/device-type/", {"kind": kind})
    assert response.status_code == 302, text(response)
    pk = int(response["Location"].split("/")[2])
    response = client.post(f"/enroll/{pk}/phone/", {"phone_number": number, "number_is_correct": "on"})
    return Registration.objects.get(pk=pk), response


def ask_for_code(client, url: str, channel: str, sending):
    with sending():
        return client.post(url, {"action": "send", "channel": channel}, follow=True)


def enter_code(client, url: str, code: str):
    return client.post(url, {"action": "confirm", "code": code})


def a_wrong_code(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def nothing_queued():
    """No code was made or queued: no challenge row and no text or call (emailed notices are not codes)."""
    texts_and_calls = OutboundMessage.objects.exclude(channel=OutboundMessage.Channel.EMAIL)
    return not texts_and_calls.exists() and not PhoneVerification.objects.exists()


def put_on_record(other, number: str, history: str) -> None:
    """Give ``other`` a mobile with ``number``: in use, retired long ago, or a setup left half-way."""
    if history == "pending":
        registration = services.start_enrollment(other, kind="mobile", verified_at=None)
        services.set_phone_number(registration, phone_number=number, actor=other, verified_at=timezone.now())
        return
    registration = services.start_enrollment(other, kind="mobile", verified_at=None)
    registration = services.set_phone_number(registration, phone_number=number, actor=other, verified_at=timezone.now())
    registration = services.set_platform(registration, platform="android", actor=other)
    registration = services.issue_app_secret(registration, actor=other, verified_at=timezone.now())
    registration = services.confirm_activation(
        registration, code=fresh_code(registration.app_device), actor=other, verified_at=timezone.now()
    )
    if history == "retired":
        add_app_device(other, kind="tablet")
        services.retire_registration(registration, actor=other, verified_at=timezone.now())


def finish_app_steps(client, registration) -> Registration:
    """Platform, install and activate in the views, with a real code from the new app."""
    url = f"/enroll/{registration.pk}/"
    assert client.post(url + "platform/", {"platform": "android"})["Location"] == url + "install/"
    assert client.post(url + "install/")["Location"] == url + "activate/"
    registration = Registration.objects.select_related("app_device").get(pk=registration.pk)
    response = client.post(url + "activate/", {"code": fresh_code(registration.app_device)})
    assert response["Location"] == url + "done/", text(response)
    registration.refresh_from_db()
    return registration


def second_factor_page(person) -> str:
    """The sign-in page a person sees after the password, in a browser of its own."""
    browser = Client()
    assert browser.post("/account/sign-in/", {"username": person.username, "password": PASSWORD})["Location"] == (
        "/account/sign-in/second-factor/"
    )
    return text(browser.get("/account/sign-in/second-factor/"))


def pending_landline(person, number: str = NUMBER) -> Registration:
    registration = services.start_enrollment(person, kind="landline", verified_at=timezone.now())
    return services.set_phone_number(registration, phone_number=number, actor=person, verified_at=timezone.now())


# --- When the wizard checks the number ---------------------------------------------------------


def test_mobile_number_not_on_record_has_no_check_step(wizard, person, recording_gateway, sending):
    registration, response = enter_number(wizard, "mobile", "(617) 555-0188")
    assert response["Location"] == f"/enroll/{registration.pk}/platform/"
    assert not kinds.phone_check_required(registration)
    # The step cannot be forced either: it sends nothing and moves on.
    assert wizard.get(verify_url(registration))["Location"] == f"/enroll/{registration.pk}/platform/"
    with sending():
        response = wizard.post(verify_url(registration), {"action": "send", "channel": "sms"})
    assert response["Location"] == f"/enroll/{registration.pk}/platform/"
    assert nothing_queued() and not recording_gateway.delivered


@pytest.mark.parametrize("history", ["active", "retired", "pending"])
def test_mobile_number_on_record_for_another_person_must_be_proven(
    wizard, person, other, clock, recording_gateway, sending, history
):
    put_on_record(other, NUMBER, history)

    registration, response = enter_number(wizard, "mobile", NUMBER)

    url = verify_url(registration)
    assert response["Location"] == url
    # The later steps send the person back to the check.
    for step in ("platform", "install", "activate"):
        assert wizard.get(f"/enroll/{registration.pk}/{step}/")["Location"] == url
    page = text(wizard.get(url))
    assert "Text me a code" in page and "Call me with a code" in page and MASKED in page

    page = text(ask_for_code(wizard, url, "sms", sending))
    assert f"We texted {MASKED} with a 6-digit code." in page
    (sms,) = recording_gateway.delivered
    assert (sms.channel, sms.number) == ("sms", NUMBER)
    # The code goes to whoever holds the number, never to the page that asked for it.
    assert sms.code not in page

    response = enter_code(wizard, url, sms.code)
    assert response["Location"] == f"/enroll/{registration.pk}/platform/"
    registration.refresh_from_db()
    assert registration.phone_verified_at is not None
    # Proven, but not a sign-in factor before the app is activated (SMS-08).
    assert not registration.phone_device.confirmed
    assert not list(devices_for_user(person, confirmed=True))

    registration = finish_app_steps(wizard, registration)
    phone = PhoneDevice.objects.get(pk=registration.phone_device_id)
    assert phone.confirmed and phone.can_text and str(phone.number) == NUMBER


def test_number_of_another_person_cannot_be_bound_without_its_code(wizard, person, other, recording_gateway, sending):
    put_on_record(other, NUMBER, "active")
    registration, _ = enter_number(wizard, "mobile", NUMBER)
    url = verify_url(registration)
    ask_for_code(wizard, url, "voice", sending)
    held_by_other = recording_gateway.last_to(NUMBER).code

    for guess in ("000000", "123456", "999999"):
        if guess == held_by_other:
            continue
        response = enter_code(wizard, url, guess)
        assert response.status_code == 200
        assert errors.PHONE_WRONG_CODE in text(response)

    registration.refresh_from_db()
    assert registration.phone_verified_at is None and registration.phone_device_id is None
    assert wizard.get(f"/enroll/{registration.pk}/platform/")["Location"] == url


def test_landline_is_always_checked_and_only_by_a_call(wizard, person, recording_gateway, sending):
    registration, response = enter_number(wizard, "landline", "617-555-0188")
    url = verify_url(registration)
    assert response["Location"] == url
    page = text(wizard.get(url))
    assert "Call me with a code" in page and "Text me a code" not in page

    page = text(ask_for_code(wizard, url, "sms", sending))
    assert errors.PHONE_CHANNEL_NOT_ALLOWED in page
    assert nothing_queued() and not recording_gateway.delivered

    page = text(ask_for_code(wizard, url, "voice", sending))
    assert f"We are calling {MASKED} with a 6-digit code." in page
    call = recording_gateway.last_to(NUMBER)
    assert call.channel == "voice"

    response = enter_code(wizard, url, call.code)

    assert response["Location"] == f"/enroll/{registration.pk}/done/"
    registration.refresh_from_db()
    assert registration.status == Registration.Status.ACTIVE and registration.phone_verified_at
    phone = registration.phone_device
    assert phone.confirmed and not phone.can_text and phone.challenge_channels == ("voice",)
    assert events("device.bound", subject=person).get().details["factor"] == "phone"
    # The call that proved the number also verified this session: My devices opens without another code.
    assert wizard.get("/devices/").status_code == 200


# --- The code itself (SMS-02) ---------------------------------------------------------------------


def test_sms02_right_code_after_a_wrong_one_proceeds_and_the_wrong_one_counts(
    wizard, person, recording_gateway, sending
):
    registration, _ = enter_number(wizard, "landline", NUMBER)
    url = verify_url(registration)
    ask_for_code(wizard, url, "voice", sending)
    code = recording_gateway.last_to(NUMBER).code

    response = enter_code(wizard, url, a_wrong_code(code))

    assert response.status_code == 200
    assert errors.PHONE_WRONG_CODE in text(response)
    verification = PhoneVerification.objects.get(registration=registration)
    assert verification.attempts == 1 and verification.consumed_at is None
    assert events("phone.code_rejected", subject=person).get().details["attempts"] == 1

    assert enter_code(wizard, url, code)["Location"] == f"/enroll/{registration.pk}/done/"


def test_sms02_code_expires_after_ten_minutes(wizard, person, clock, recording_gateway, sending):
    registration, _ = enter_number(wizard, "landline", NUMBER)
    url = verify_url(registration)
    ask_for_code(wizard, url, "voice", sending)
    code = recording_gateway.last_to(NUMBER).code
    verification = PhoneVerification.objects.get(registration=registration)
    assert (verification.expires_at - verification.created_at).total_seconds() <= CODE_TTL_SECONDS

    clock.tick(CODE_TTL_SECONDS + 1)
    response = enter_code(wizard, url, code)

    assert response.status_code == 200
    assert errors.PHONE_NO_OPEN_CODE in text(response)
    registration.refresh_from_db()
    assert registration.status == Registration.Status.PENDING and registration.phone_verified_at is None


def test_sms02_code_still_works_just_before_it_expires(wizard, clock, recording_gateway, sending):
    registration, _ = enter_number(wizard, "landline", NUMBER)
    url = verify_url(registration)
    ask_for_code(wizard, url, "voice", sending)

    clock.tick(CODE_TTL_SECONDS - 1)

    assert enter_code(wizard, url, recording_gateway.last_to(NUMBER).code)["Location"].endswith("/done/")


def test_sms02_replayed_code_is_refused(wizard, person, recording_gateway, sending):
    registration, _ = enter_number(wizard, "landline", NUMBER)
    url = verify_url(registration)
    ask_for_code(wizard, url, "voice", sending)
    code = recording_gateway.last_to(NUMBER).code
    assert enter_code(wizard, url, code)["Location"].endswith("/done/")

    with pytest.raises(ValidationError) as refused:
        services.confirm_phone_code(
            Registration.objects.get(pk=registration.pk), code=code, actor=person, verified_at=timezone.now()
        )

    assert refused.value.messages == [errors.PHONE_NO_OPEN_CODE]
    assert PhoneVerification.objects.get(registration=registration).consumed_at is not None
    assert events("phone.verified", subject=person).count() == 1
    assert events("device.bound", subject=person).count() == 1


def test_sms02_five_wrong_codes_kill_the_code_and_a_new_one_is_needed(wizard, clock, recording_gateway, sending):
    registration, _ = enter_number(wizard, "landline", NUMBER)
    url = verify_url(registration)
    ask_for_code(wizard, url, "voice", sending)
    code = recording_gateway.last_to(NUMBER).code

    for attempt in range(1, 5):
        assert errors.PHONE_WRONG_CODE in text(enter_code(wizard, url, a_wrong_code(code))), attempt
    fifth = enter_code(wizard, url, a_wrong_code(code))
    assert errors.PHONE_NO_OPEN_CODE in text(fifth)

    # Even the right code is now refused: the challenge is spent.
    refused = enter_code(wizard, url, code)
    assert errors.PHONE_NO_OPEN_CODE in text(refused)
    assert PhoneVerification.objects.get(registration=registration).attempts == 5
    registration.refresh_from_db()
    assert registration.status == Registration.Status.PENDING

    clock.tick(61)
    ask_for_code(wizard, url, "voice", sending)
    new_code = recording_gateway.last_to(NUMBER).code
    assert enter_code(wizard, url, new_code)["Location"].endswith("/done/")


def test_sms02_double_submit_of_the_right_code_binds_once(wizard, person, other, recording_gateway, sending):
    put_on_record(other, NUMBER, "pending")
    registration, _ = enter_number(wizard, "mobile", NUMBER)
    url = verify_url(registration)
    ask_for_code(wizard, url, "sms", sending)
    code = recording_gateway.last_to(NUMBER).code

    first = enter_code(wizard, url, code)
    second = enter_code(wizard, url, code)

    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"] == f"/enroll/{registration.pk}/platform/"
    assert events("phone.verified", subject=person).count() == 1
    assert PhoneDevice.objects.filter(user=person).count() == 1


@pytest.mark.postgres
def test_sms02_concurrent_submits_of_the_right_code_bind_once(transactional_db, make_user, recording_gateway):
    person = make_user("cdavis")
    registration = pending_landline(person)
    # Transactional test: the send task runs at the real commit.
    services.send_phone_code(registration, channel="voice", actor=person)
    code = recording_gateway.last_to(NUMBER).code
    barrier = threading.Barrier(2)
    outcomes = []

    def submit():
        try:
            barrier.wait(timeout=10)
            services.confirm_phone_code(registration, code=code, actor=person, verified_at=timezone.now())
            outcomes.append("bound")
        except ValidationError as error:
            outcomes.append(error.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == ["bound", "not_pending"]
    assert AuditEvent.objects.filter(action="phone.verified").count() == 1
    assert AuditEvent.objects.filter(action="device.bound").count() == 1
    assert PhoneDevice.objects.filter(user=person).count() == 1


def test_sms02_codes_are_six_random_digits():
    codes = [phone_codes.new_code() for _ in range(2000)]
    assert all(len(code) == 6 and code.isdigit() for code in codes)
    # 2000 draws from a million values: a handful of repeats at most, and leading zeros kept.
    assert len(set(codes)) > 1990
    assert any(code.startswith("0") for code in codes)


def _database_text() -> str:
    """Every value of every row of every table, as text: what a database dump would show."""
    rows = []
    for model in apps.get_models():
        for values in model.objects.all().values_list():
            rows.append(" ".join(str(value) for value in values))
    return "\n".join(rows)


def test_sms02_code_is_stored_only_as_a_keyed_hash_and_never_logged(
    wizard, person, clock, settings, caplog, recording_gateway, django_capture_on_commit_callbacks
):
    # (Frozen on a whole second, so no timestamp's microseconds can look like the code.)
    settings.DEBUG = True  # SQL statements and their parameters are logged too
    for name in ("", "django", "celery", "devices", "identity"):  # Django's own config stops "django" at INFO
        caplog.set_level(logging.DEBUG, logger=name or None)
    registration, _ = enter_number(wizard, "landline", NUMBER)
    url = verify_url(registration)
    with django_capture_on_commit_callbacks() as queued:
        wizard.post(url, {"action": "send", "channel": "voice"})
    while_queued = _database_text()
    for callback in queued:
        callback()
    code = recording_gateway.last_to(NUMBER).code
    after_sending = _database_text()
    enter_code(wizard, url, a_wrong_code(code))
    assert enter_code(wizard, url, code)["Location"].endswith("/done/")

    assert code not in while_queued and code not in after_sending and code not in _database_text()
    verification = PhoneVerification.objects.get(registration=registration)
    assert len(verification.code_hash) == 64
    assert verification.code_hash != hashlib.sha256(code.encode()).hexdigest()
    for event in AuditEvent.objects.all():
        assert code not in json.dumps(event.details)
    assert "SELECT" in caplog.text  # the debug log really was on
    assert code not in caplog.text


def test_sms02_hash_is_keyed_by_a_secret_outside_the_database(person, settings, recording_gateway, sending):
    registration = pending_landline(person)
    with sending():
        verification = services.send_phone_code(registration, channel="voice", actor=person)
    code = recording_gateway.last_to(NUMBER).code
    assert phone_codes.code_matches(verification, code)

    # With a database dump but not the key, the stored hash matches no code.
    settings.FACTOR_ENCRYPTION_KEYS = ["a-key-that-is-not-the-deployment-key"]
    settings.SECRET_KEY = "not-the-deployment-secret-key-either-" + "x" * 20
    assert not phone_codes.code_matches(verification, code)


def test_sms02_code_of_a_superseded_challenge_is_refused(wizard, clock, recording_gateway, sending):
    registration, _ = enter_number(wizard, "landline", NUMBER)
    url = verify_url(registration)
    ask_for_code(wizard, url, "voice", sending)
    old_code = recording_gateway.last_to(NUMBER).code
    clock.tick(61)
    ask_for_code(wizard, url, "voice", sending)
    new_code = recording_gateway.last_to(NUMBER).code
    if new_code == old_code:  # one chance in a million: nothing to tell apart
        pytest.skip("the two random codes happen to be equal")

    response = enter_code(wizard, url, old_code)

    assert errors.PHONE_WRONG_CODE in text(response)
    old, new = PhoneVerification.objects.filter(registration=registration).order_by("created_at")
    assert old.superseded_at is not None and old.consumed_at is None
    assert enter_code(wizard, url, new_code)["Location"].endswith("/done/")


def test_sms02_code_of_another_persons_challenge_is_refused(person, other, clock, recording_gateway, sending):
    mine = pending_landline(person)
    theirs = pending_landline(other)
    with sending():
        services.send_phone_code(theirs, channel="voice", actor=other)
    their_code = recording_gateway.last_to(NUMBER).code
    clock.tick(61)
    with sending():
        services.send_phone_code(mine, channel="voice", actor=person)
    my_code = recording_gateway.last_to(NUMBER).code
    if my_code == their_code:
        pytest.skip("the two random codes happen to be equal")

    with pytest.raises(ValidationError) as refused:
        services.confirm_phone_code(mine, code=their_code, actor=person, verified_at=timezone.now())

    assert refused.value.messages == [errors.PHONE_WRONG_CODE]
    assert Registration.objects.get(pk=mine.pk).phone_verified_at is None
    # Both challenges stay their owners' own.
    services.confirm_phone_code(theirs, code=their_code, actor=other, verified_at=timezone.now())
    services.confirm_phone_code(mine, code=my_code, actor=person, verified_at=timezone.now())
    assert Registration.objects.filter(pk__in=[mine.pk, theirs.pk], status="active").count() == 2


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


def test_sms07_mobile_abroad_on_record_cannot_be_sent_its_check(
    wizard, person, other, clock, recording_gateway, sending
):
    put_on_record(other, "+447400123456", "pending")
    registration, response = enter_number(wizard, "mobile", "+44 7400 123456")
    assert response["Location"] == verify_url(registration)

    page = text(ask_for_code(wizard, verify_url(registration), "sms", sending))

    assert errors.PHONE_COUNTRY_NOT_ALLOWED in page
    assert nothing_queued() and not recording_gateway.delivered


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
    assert bound.details == {"registration": app_phone.pk, "kind": "mobile", "factor": "phone"}
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
    put_on_record(other, NUMBER, "pending")
    put_on_record(make_user("ewhite"), OTHER_NUMBER, "pending")
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
    put_on_record(other, NUMBER, "pending")
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
    put_on_record(other, NUMBER, "pending")
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
    assert [e.details for e in sent] == [
        {"registration": registration.pk, "channel": "sms", "purpose": "ownership", "phone": MASKED},
        {"registration": landline.pk, "channel": "voice", "purpose": "ownership", "phone": "+1********77"},
    ]
    rejected = events("phone.code_rejected", subject=person).get()
    assert rejected.details == {"registration": registration.pk, "attempts": 1}
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
