"""Proving a phone number: the wizard's ownership check, turning on codes by text and call, and the
rules every such code follows (SMS-02, SMS-07, SMS-08), through the real views.

The outside provider is the only fake: ``RecordingGateway`` keeps what would have been texted or
read out, and the send task runs in-process when the request's transaction commits."""

import hashlib
import json
import logging

import pytest
from cryptography.fernet import Fernet
from django.apps import apps
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_otp import devices_for_user

from devices import errors, kinds, phone_codes, services
from devices.models import PhoneDevice, PhoneVerification, Registration
from identity.models import AuditEvent
from testsupport import fresh_code, race

from .helpers import (
    CODE_TTL_SECONDS,
    MASKED,
    NUMBER,
    OTHER_NUMBER,
    a_wrong_code,
    ask_for_code,
    enter_code,
    enter_number,
    events,
    finish_app_steps,
    nothing_queued,
    pending_landline,
    put_on_record,
    text,
    verify_url,
)

pytestmark = pytest.mark.django_db

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


@pytest.mark.parametrize("history", ["active", "retired"])
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


def test_a_number_only_typed_into_a_setup_left_half_way_is_not_on_record(wizard, person, other):
    """Nobody proved it here nor set up a device with it, so it asks no check of the next person (else anyone
    could put a check in the way of a number by typing it and leaving)."""
    put_on_record(other, NUMBER, "pending")

    registration, response = enter_number(wizard, "mobile", NUMBER)

    assert response["Location"] == f"/enroll/{registration.pk}/platform/"
    assert not kinds.phone_check_required(registration)


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
    put_on_record(other, NUMBER, "active")
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

    def submit():
        services.confirm_phone_code(registration, code=code, actor=person, verified_at=timezone.now())
        return "bound"

    outcomes = race(submit, submit)
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


def test_sms02_a_code_sent_before_a_key_rotation_still_matches(person, settings, recording_gateway, sending):
    """The first of FACTOR_ENCRYPTION_KEYS keys the hash and every one of them still matches, as for encryption: a
    code texted just before the new key came first works until the old key is removed (docs/operations.md)."""
    old, new = (Fernet.generate_key().decode() for _ in range(2))
    settings.FACTOR_ENCRYPTION_KEYS = [old]
    registration = pending_landline(person)
    with sending():
        verification = services.send_phone_code(registration, channel="voice", actor=person)
    code = recording_gateway.last_to(NUMBER).code

    settings.FACTOR_ENCRYPTION_KEYS = [new, old]
    assert phone_codes.code_matches(verification, code)
    assert not phone_codes.code_matches(verification, f"{(int(code) + 1) % 10**6:06d}")
    settings.FACTOR_ENCRYPTION_KEYS = [new]
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


def test_activation_refuses_a_number_on_record_changed_to_after_the_check(person, other, clock):
    """The number is changed to one on record once the app's secret is issued: binding it needs its check first,
    whichever caller binds (the step order is the service's rule, not only the wizard's)."""
    put_on_record(other, NUMBER, "active")
    registration = services.start_enrollment(person, kind="mobile", verified_at=None)
    registration = services.set_phone_number(registration, phone_number=OTHER_NUMBER, actor=person, verified_at=None)
    registration = services.set_platform(registration, platform="android", actor=person)
    registration = services.issue_app_secret(registration, actor=person, verified_at=None)
    registration = services.set_phone_number(registration, phone_number=NUMBER, actor=person, verified_at=None)

    with pytest.raises(ValidationError) as refused:
        services.confirm_activation(
            registration, code=fresh_code(registration.app_device), actor=person, verified_at=None
        )

    assert refused.value.code == "order"
    registration.refresh_from_db()
    assert registration.status == Registration.Status.PENDING
    assert not list(devices_for_user(person, confirmed=True))
