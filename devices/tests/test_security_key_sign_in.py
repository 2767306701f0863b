"""Signing in with a security key, on its own and through the views."""

import json
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from devices import errors, services
from devices.checks import check_webauthn_origins_https, check_webauthn_relying_party
from devices.models import Registration, SecurityKeyDevice, WebAuthnChallenge
from devices.services import security_keys
from devices.webauthn import SessionChallenge
from identity.forms import SecondFactorForm
from identity.services import SecondFactorOutcome, verify_second_factor

from .authenticator import b64url
from .helpers import (
    IP,
    ORIGIN,
    RP_ID,
    add_app_device,
    answer,
    events,
    failures,
    new_key,
    pending_key,
    register,
    registration_challenge,
    sign_in,
    sign_in_challenge,
    text,
)

pytestmark = pytest.mark.usefixtures("relying_party")

# --- Signing in -------------------------------------------------------------------------------------


def test_sign_in_with_a_key_passes_the_second_factor(key_holder):
    person, key = key_holder
    options, claim = sign_in_challenge(person)
    device = SecurityKeyDevice.objects.get()
    assert [d["id"] for d in options["allowCredentials"]] == [key.id]
    assert options["rpId"] == RP_ID and options["userVerification"] == "preferred"
    outcome, used = security_keys.verify_security_key(person, response_json=key.get(options), challenge=claim, ip=IP)
    assert outcome == SecondFactorOutcome.OK and used == device
    device.refresh_from_db()
    assert device.sign_count == key.sign_count == 1 and device.last_used_at is not None
    event = events("signin.second_factor_ok").get()
    assert event.details == {"factor": "security_key", "entry_point": "web"} and event.ip == IP


def test_several_keys_per_person_each_signs_in(person):
    keys = [new_key(), new_key(), new_key()]
    for key in keys:
        register(person, key)
    options, _ = sign_in_challenge(person)
    assert {d["id"] for d in options["allowCredentials"]} == {key.id for key in keys}
    assert [sign_in(person, key) for key in keys] == [SecondFactorOutcome.OK] * 3


@pytest.mark.parametrize(
    "get_kwargs",
    [{"origin": "https://evil.test"}, {"origin": "http://mfa.example.edu"}, {"rp_id": "evil.test"}],
    ids=["wrong origin", "http origin", "wrong RP ID"],
)
def test_otp01_assertion_from_the_wrong_origin_or_rp_id_is_refused_and_counted(key_holder, get_kwargs):
    person, key = key_holder
    assert sign_in(person, key, **get_kwargs) == SecondFactorOutcome.WRONG
    assert failures(person) == 1
    event = events("signin.second_factor_failed").get()
    assert event.details["factor"] == "security_key"
    assert SecurityKeyDevice.objects.get().sign_count == 0


@pytest.mark.parametrize("counter_step", [1, 0], ids=["key with counter", "key without counter"])
def test_replayed_assertion_is_refused(person, clock, counter_step):
    # Without a counter only the single-use challenge stops the replay.
    key = new_key(counter_step=counter_step)
    register(person, key)
    options, claim = sign_in_challenge(person)
    assertion = key.get(options)
    assert answer(person, assertion, claim) == SecondFactorOutcome.OK
    assert answer(person, assertion, claim) == security_keys.CHALLENGE_NOT_OPEN  # spent: nothing checked
    clock.tick(1)  # past the back-off that answer started
    _, fresh = sign_in_challenge(person)
    assert answer(person, assertion, fresh) == SecondFactorOutcome.WRONG  # checked against the new one: fails
    assert failures(person) == 1


def test_sign_in_challenge_expires(key_holder, clock, settings):
    person, key = key_holder
    options, claim = sign_in_challenge(person)
    clock.tick(settings.WEBAUTHN_CHALLENGE_TTL.total_seconds() + 1)
    assert answer(person, key.get(options), claim) == security_keys.CHALLENGE_NOT_OPEN
    assert failures(person) == 0
    assert events("signin.key_challenge_not_open").get().details == {"reason": "challenge_expired"}


def test_sign_in_challenge_from_another_session_is_refused(key_holder):
    person, key = key_holder
    options, claim = sign_in_challenge(person, session="victim-session")
    stolen = SessionChallenge(claim.challenge_id, "attacker-session")
    assert answer(person, key.get(options), stolen) == security_keys.CHALLENGE_NOT_OPEN
    assert failures(person) == 0


def test_a_newer_challenge_withdraws_the_older_one_of_the_same_session(key_holder):
    person, key = key_holder
    old_options, old_claim = sign_in_challenge(person)
    sign_in_challenge(person)
    assert answer(person, key.get(old_options), old_claim) == security_keys.CHALLENGE_NOT_OPEN


def test_a_registration_challenge_cannot_sign_in(key_holder):
    person, key = key_holder
    options, claim = registration_challenge(person, session="session-b")
    assert answer(person, key.get(options), claim) == security_keys.CHALLENGE_NOT_OPEN


def test_lower_or_equal_sign_counter_is_refused_and_audited(person, clock):
    key = new_key(sign_count=4)
    registration = register(person, key)
    assert sign_in(person, key) == SecondFactorOutcome.OK  # signs 5
    device = SecurityKeyDevice.objects.get()
    assert device.sign_count == 5
    for signed in (3, 5):
        clock.tick(60)
        assert sign_in(person, key, sign_count=signed) == SecondFactorOutcome.WRONG
    device.refresh_from_db()
    assert device.sign_count == 5
    assert [(e.subject, e.ip, e.details) for e in events("security_key.counter_regressed").order_by("sequence")] == [
        (
            person,
            IP,
            {"device": device.persistent_id, "registration": registration.pk, "stored_count": 5, "signed_count": c},
        )
        for c in (3, 5)
    ]
    clock.tick(60)
    assert sign_in(person, key, sign_count=6) == SecondFactorOutcome.OK


def test_a_key_without_counter_signs_in_with_zero_again_and_again(person, clock):
    key = new_key(counter_step=0)
    register(person, key)
    assert [sign_in(person, key) for _ in range(3)] == [SecondFactorOutcome.OK] * 3
    assert SecurityKeyDevice.objects.get().sign_count == 0
    assert not events("security_key.counter_regressed").exists()


def test_a_counter_that_falls_back_to_zero_is_refused(person):
    key = new_key(sign_count=9)
    register(person, key)
    assert sign_in(person, key, sign_count=0) == SecondFactorOutcome.WRONG
    assert events("security_key.counter_regressed").get().details["stored_count"] == 9


def test_another_persons_credential_is_refused_at_sign_in(key_holder, make_user):
    person, _ = key_holder
    other = make_user("other")
    others_key = new_key()
    register(other, others_key)
    options, claim = sign_in_challenge(person)
    # The other person's key really signs Ann's challenge: still not Ann's key.
    assert answer(person, others_key.get(options), claim) == SecondFactorOutcome.WRONG
    assert failures(person) == 1 and failures(other) == 0
    event = events("security_key.credential_refused").get()
    assert event.subject == person and event.details["registered_here"] is True
    assert WebAuthnChallenge.objects.get(pk=claim.challenge_id).consumed_at is not None
    # And the other person's device never verified anything.
    assert SecurityKeyDevice.objects.get(user=other).sign_count == 0


def test_an_unknown_credential_is_refused_at_sign_in(key_holder):
    person, _ = key_holder
    options, claim = sign_in_challenge(person)
    assert answer(person, new_key().get(options), claim) == SecondFactorOutcome.WRONG
    assert events("security_key.credential_refused").get().details["registered_here"] is False


@pytest.mark.parametrize("garbage", ["", "not json", "{}", json.dumps({"id": "x", "rawId": "x"})])
def test_garbage_instead_of_an_assertion_is_refused_and_counted(key_holder, garbage):
    person, _ = key_holder
    _, claim = sign_in_challenge(person)
    assert answer(person, garbage, claim) == SecondFactorOutcome.WRONG
    assert failures(person) == 1


def test_bnd04_a_removed_key_cannot_sign_in_and_keeps_its_history(person, clock):
    kept, removed = new_key(), new_key()
    register(person, kept)
    retired = register(person, removed)
    assert sign_in(person, removed) == SecondFactorOutcome.OK
    services.retire_registration(retired, actor=person, verified_at=timezone.now())
    retired.refresh_from_db()
    device = SecurityKeyDevice.objects.get(credential_id=removed.id)
    assert retired.status == Registration.Status.RETIRED and retired.security_key_device == device
    assert device.confirmed is False and device.credential_id == removed.id
    options, _ = sign_in_challenge(person)
    assert [d["id"] for d in options["allowCredentials"]] == [kept.id]
    clock.tick(60)
    assert sign_in(person, removed) == SecondFactorOutcome.WRONG
    # Even straight at the device, bypassing the lookup, a retired key verifies nothing.
    options, claim = sign_in_challenge(person)
    token = security_keys.AssertionToken(challenge=claim, response_json=removed.get(options))
    assert device.verify_token(token) is False


def test_bnd04_with_no_key_left_there_is_nothing_to_ask(person, enroll, clock):
    enroll(person)
    key = new_key()
    registration = register(person, key)
    services.retire_registration(registration, actor=person, verified_at=timezone.now())
    with pytest.raises(ValidationError) as refused:
        sign_in_challenge(person)
    assert refused.value.messages == [errors.KEY_NONE]
    with pytest.raises(ValidationError):
        answer(person, key.get({"challenge": b64url(b"x" * 32)}), SessionChallenge(None, "session-b"))


def test_otp01_key_failures_lock_the_account_with_code_failures(key_holder, settings, clock):
    settings.LOCKOUT_THRESHOLD = 4
    person, key = key_holder
    app = add_app_device(person).app_device
    assert verify_second_factor(person, device=app, code="000000", ip=IP) == SecondFactorOutcome.WRONG
    outcomes = []
    for _ in range(3):
        clock.tick(60)
        outcomes.append(sign_in(person, key, origin="https://evil.test"))
    assert outcomes == [SecondFactorOutcome.WRONG, SecondFactorOutcome.WRONG, SecondFactorOutcome.LOCKED]
    assert events("account.locked").count() == 1
    clock.tick(60)
    # A good assertion does not open a locked account.
    assert sign_in(person, key) == SecondFactorOutcome.LOCKED
    assert events("signin.refused_locked").get().details == {"factor": "security_key", "entry_point": "web"}


def test_otp01_a_good_key_resets_the_failure_count(key_holder, clock):
    person, key = key_holder
    assert sign_in(person, key, origin="https://evil.test") == SecondFactorOutcome.WRONG
    clock.tick(60)
    assert sign_in(person, key) == SecondFactorOutcome.OK
    assert failures(person) == 0


def test_django_otp_back_off_applies_to_keys(key_holder, clock):
    person, key = key_holder
    assert sign_in(person, key, origin="https://evil.test") == SecondFactorOutcome.WRONG
    # Straight after a failure even a good assertion waits, and the attempt counts.
    assert sign_in(person, key) == SecondFactorOutcome.THROTTLED
    assert failures(person) == 2


def test_a_typed_code_never_verifies_a_key(key_holder):
    person, _ = key_holder
    device = SecurityKeyDevice.objects.get()
    assert verify_second_factor(person, device=device, code="123456", ip=IP) == SecondFactorOutcome.WRONG
    form = SecondFactorForm({"device": device.persistent_id, "code": "123456"}, devices=[device])
    assert not form.is_valid() and form.key_devices == [device] and not form.devices


def test_challenges_live_in_the_database_and_old_ones_are_cleared(key_holder, clock):
    person, _ = key_holder
    sign_in_challenge(person)
    clock.tick(timedelta(days=2).total_seconds())
    sign_in_challenge(person)
    assert WebAuthnChallenge.objects.filter(user=person).count() == 1


# --- Through the views --------------------------------------------------------------------------


def test_wizard_registers_a_key_through_the_views(client, person, password):
    client.post("/account/sign-in/", {"username": person.username, "password": password})
    response = client.post("/enroll/device-type/", {"kind": "security_key"})
    registration = Registration.objects.get(user=person)
    assert response["Location"] == f"/enroll/{registration.pk}/security-key/"
    page = text(client.get(response["Location"]))
    assert "Step 2 of 2" in page and "Name this key" in page
    assert 'data-webauthn="register"' in page and "/static/js/webauthn.js" in page and "<script>" not in page

    refused = client.post(f"/enroll/{registration.pk}/security-key/options/", {"label": ""})
    assert refused.status_code == 400 and refused.json() == {"error": errors.KEY_LABEL_INVALID}
    options = client.post(f"/enroll/{registration.pk}/security-key/options/", {"label": "Blue key"})
    assert options.status_code == 200 and options["Content-Type"] == "application/json"
    assert "no-store" in options["Cache-Control"]
    key = new_key()
    response = client.post(
        f"/enroll/{registration.pk}/security-key/",
        {"label": "Blue key", "credential": key.create(options.json())},
    )
    assert response.status_code == 302 and response["Location"] == f"/enroll/{registration.pk}/done/"
    assert "sign in by touching" in text(client.get(response["Location"]))
    registration.refresh_from_db()
    assert registration.status == Registration.Status.ACTIVE and registration.label == "Blue key"
    assert client.session["otp_device_id"] == registration.security_key_device.persistent_id

    devices_page = text(client.get("/devices/"))
    assert "Blue key" in devices_page and "Touching the security key" in devices_page
    assert (
        f"/devices/{registration.pk}/rename/" in devices_page and f"/devices/{registration.pk}/remove/" in devices_page
    )


def test_wizard_step_refuses_a_missing_or_replayed_answer(client, person, password):
    client.post("/account/sign-in/", {"username": person.username, "password": password})
    client.post("/enroll/device-type/", {"kind": "security_key"})
    registration = Registration.objects.get(user=person)
    url = f"/enroll/{registration.pk}/security-key/"
    page = text(client.post(url, {"label": "Blue key", "credential": ""}))
    assert errors.KEY_NO_RESPONSE in page
    options = client.post(url + "options/", {"label": "Blue key"}).json()
    answer_json = new_key().create(options)
    # The challenge id lives in the session only and is taken out when answered: a replay has nothing to answer.
    assert client.post(url, {"label": "Blue key", "credential": answer_json}).status_code == 302
    again = pending_key(person)
    page = text(client.post(f"/enroll/{again.pk}/security-key/", {"label": "Key", "credential": answer_json}))
    assert errors.KEY_CHALLENGE_INVALID in page


def test_rename_and_remove_a_key_in_my_devices(client, person, password):
    key, spare = new_key(), new_key()
    registration = register(person, key)
    register(person, spare)
    client.post("/account/sign-in/", {"username": person.username, "password": password})
    options = client.post("/security-key/sign-in/options/", {"purpose": "sign_in"}).json()
    client.post("/security-key/sign-in/", {"purpose": "sign_in", "credential": key.get(options)})
    response = client.post(f"/devices/{registration.pk}/rename/", {"label": "Keyring key"})
    assert response.status_code == 302
    assert SecurityKeyDevice.objects.get(credential_id=key.id).name == "Keyring key: security key"
    response = client.post(f"/devices/{registration.pk}/remove/")
    assert response.status_code == 302 and response["Location"] == "/devices/"
    registration.refresh_from_db()
    assert registration.status == Registration.Status.RETIRED
    assert SecurityKeyDevice.objects.get(credential_id=key.id).confirmed is False


def test_ac01_another_persons_key_gives_404(client, person, make_user, enroll, sign_in):
    registration = register(person, new_key())
    pending = pending_key(person)
    intruder = make_user("intruder")
    enroll(intruder)
    sign_in(client, intruder)
    for url in (
        f"/devices/{registration.pk}/rename/",
        f"/devices/{registration.pk}/remove/",
        f"/enroll/{pending.pk}/security-key/",
    ):
        assert client.get(url).status_code == 404, url
        assert client.post(url, {"label": "mine now"}).status_code == 404, url
    assert client.post(f"/enroll/{pending.pk}/security-key/options/", {"label": "x"}).status_code == 404
    registration.refresh_from_db()
    assert registration.label == "Blue key" and registration.status == Registration.Status.ACTIVE
    assert not WebAuthnChallenge.objects.filter(registration=pending).exists()


def test_signing_in_with_a_key_through_the_views(client, key_holder, password):
    person, key = key_holder
    client.post("/account/sign-in/", {"username": person.username, "password": password})
    pending_session = client.session.session_key
    page = text(client.get("/account/sign-in/second-factor/"))
    assert "Use your security key" in page and 'name="code"' not in page
    options = client.post("/security-key/sign-in/options/", {"purpose": "sign_in"})
    assert options.status_code == 200 and "no-store" in options["Cache-Control"]
    response = client.post("/security-key/sign-in/", {"purpose": "sign_in", "credential": key.get(options.json())})
    assert response.status_code == 302 and response["Location"] == "/devices/"
    assert client.session.session_key != pending_session  # SES-01
    assert client.get("/devices/").status_code == 200
    assert client.session["otp_device_id"] == SecurityKeyDevice.objects.get().persistent_id


def test_a_refused_key_at_sign_in_says_so_and_keeps_the_pending_sign_in(client, key_holder, password):
    person, _ = key_holder
    client.post("/account/sign-in/", {"username": person.username, "password": password})
    options = client.post("/security-key/sign-in/options/", {"purpose": "sign_in"}).json()
    response = client.post("/security-key/sign-in/", {"purpose": "sign_in", "credential": new_key().get(options)})
    assert response["Location"] == "/account/sign-in/second-factor/"
    assert errors.KEY_REFUSED in text(client.get(response["Location"]))
    assert client.get("/devices/").status_code == 302  # not signed in
    response = client.post("/security-key/sign-in/", {"purpose": "sign_in", "credential": ""})
    assert errors.KEY_NO_RESPONSE in text(client.get(response["Location"]))


def test_no_key_options_without_a_pending_sign_in(client, key_holder):
    response = client.post("/security-key/sign-in/options/", {"purpose": "sign_in"})
    assert response.status_code == 403 and "expired" in response.json()["error"]
    response = client.post("/security-key/sign-in/", {"purpose": "sign_in", "credential": "{}"})
    assert response["Location"] == "/account/sign-in/"
    assert not WebAuthnChallenge.objects.filter(ceremony="authenticate").exists()


def test_second_factor_page_offers_key_and_codes_side_by_side(client, key_holder, password):
    person, _ = key_holder
    add_app_device(person)
    client.post("/account/sign-in/", {"username": person.username, "password": password})
    page = text(client.get("/account/sign-in/second-factor/"))
    assert "Use your security key" in page and "Or with a code" in page
    assert 'name="code"' in page and "Blue key: security key" not in page  # keys are no radio choice


def test_step_up_accepts_a_key(client, key_holder, password, clock, settings):
    person, key = key_holder
    client.post("/account/sign-in/", {"username": person.username, "password": password})
    options = client.post("/security-key/sign-in/options/", {"purpose": "sign_in"}).json()
    client.post("/security-key/sign-in/", {"purpose": "sign_in", "credential": key.get(options)})
    clock.tick(settings.REAUTH_MAX_AGE_SECONDS + 1)
    response = client.post("/enroll/device-type/", {"kind": "tablet"})
    assert response["Location"].startswith("/account/sign-in/confirm/")
    page = text(client.get(response["Location"]))
    assert "Use your security key" in page and 'value="confirm"' in page
    options = client.post("/security-key/sign-in/options/", {"purpose": "confirm"}).json()
    response = client.post(
        "/security-key/sign-in/",
        {"purpose": "confirm", "next": "/enroll/device-type/", "credential": key.get(options)},
    )
    assert response.status_code == 302 and response["Location"] == "/enroll/device-type/"
    response = client.post("/enroll/device-type/", {"kind": "tablet"})
    assert response.status_code == 302 and "/platform/" in response["Location"]


def test_step_up_with_a_key_refuses_an_offsite_next(client, key_holder, password):
    person, key = key_holder
    client.post("/account/sign-in/", {"username": person.username, "password": password})
    options = client.post("/security-key/sign-in/options/", {"purpose": "sign_in"}).json()
    client.post("/security-key/sign-in/", {"purpose": "sign_in", "credential": key.get(options)})
    options = client.post("/security-key/sign-in/options/", {"purpose": "confirm"}).json()
    response = client.post(
        "/security-key/sign-in/",
        {"purpose": "confirm", "next": "https://evil.test/", "credential": key.get(options)},
    )
    assert response["Location"] == "/devices/"


def test_relying_party_never_comes_from_the_host_header(client, key_holder, password):
    person, key = key_holder
    client.post("/account/sign-in/", {"username": person.username, "password": password}, HTTP_HOST="localhost")
    options = client.post("/security-key/sign-in/options/", {"purpose": "sign_in"}, HTTP_HOST="localhost").json()
    assert options["rpId"] == RP_ID
    # A key answering for the host the request named is refused: only the pinned origin and RP ID count.
    forged = key.get(options, origin="http://localhost", rp_id="localhost")
    response = client.post(
        "/security-key/sign-in/", {"purpose": "sign_in", "credential": forged}, HTTP_HOST="localhost"
    )
    assert response["Location"] == "/account/sign-in/second-factor/"
    assert failures(person) == 1


def test_relying_party_misconfiguration_fails_the_system_checks(settings):
    settings.WEBAUTHN_ORIGINS = [
        ORIGIN,
        "https://sub.mfa.example.edu",
        "https://mfa.example.edu:8443",
        "https://mfa.example.edu.evil.test",
        "ftp://mfa.example.edu",
        "https://mfa.example.edu/sign-in",
    ]
    assert [problem.id for problem in check_webauthn_relying_party(None)] == [
        "devices.E004",
        "devices.E003",
        "devices.E003",
    ]
    settings.WEBAUTHN_ORIGINS = []
    assert [problem.id for problem in check_webauthn_relying_party(None)] == ["devices.E002"]
    settings.WEBAUTHN_ORIGINS = ["http://mfa.example.edu"]
    assert [problem.id for problem in check_webauthn_origins_https(None)] == ["devices.E102"]
    settings.WEBAUTHN_RP_ID, settings.WEBAUTHN_ORIGINS = "127.0.0.1", ["http://127.0.0.1:8000"]
    assert [problem.id for problem in check_webauthn_relying_party(None)] == ["devices.W001"]


def test_otp01_an_expired_challenge_counts_nothing_toward_the_lockout_and_says_try_again(
    client, key_holder, password, clock, settings
):
    """A sign-in page left open past the challenge's life, or a double click: the answer is checked against
    nothing, so it counts nothing toward the lockout; the person is asked to try again. It counts in the key's
    back-off, as a wrong answer does, which is over by the time the key is touched again."""
    person, key = key_holder
    client.post("/account/sign-in/", {"username": person.username, "password": password})
    options = client.post("/security-key/sign-in/options/", {"purpose": "sign_in"}).json()
    clock.tick(settings.WEBAUTHN_CHALLENGE_TTL.total_seconds() + 1)
    response = client.post(
        "/security-key/sign-in/", {"purpose": "sign_in", "credential": key.get(options)}, follow=True
    )
    assert errors.KEY_CHALLENGE_INVALID in text(response)
    assert failures(person) == 0 and SecurityKeyDevice.objects.get().throttling_failure_count == 1
    clock.tick(settings.OTP_TOTP_THROTTLE_FACTOR)
    options = client.post("/security-key/sign-in/options/", {"purpose": "sign_in"}).json()
    assertion = key.get(options)
    client.post("/security-key/sign-in/", {"purpose": "sign_in", "credential": assertion})
    assert client.session["otp_device_id"] == SecurityKeyDevice.objects.get().persistent_id
    assert failures(person) == 0
