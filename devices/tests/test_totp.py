"""The authenticator app device: single use (OTP-04), time window (OTP-06), secret strength (OTP-07),
encryption at rest (OTP-08) and constant-time comparison (OTP-10)."""

import base64
import hmac
import secrets
from datetime import UTC, datetime

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.test import override_settings
from django.utils import timezone

from devices import errors, services, totp
from devices.models import AuthenticatorAppDevice, Registration
from identity.models import AuditEvent
from testsupport import fresh_code, race, totp_for

from .helpers import pending_app_registration, text, walk_to_activate

# --- OTP-04 ------------------------------------------------------------------------------------------


def test_otp04_code_accepted_once_through_confirm_and_sign_in(client, person, sign_in, password, clock):
    sign_in(client, person)
    registration = walk_to_activate(client)
    device = registration.app_device
    now = clock().timestamp()
    code = totp_for(device).at(now)
    assert client.post(f"/enroll/{registration.pk}/activate/", {"code": code})["Location"].endswith("/done/")
    client.post("/account/sign-out/")

    clock.tick(2)
    client.post("/account/sign-in/", {"username": person.username, "password": password})
    for replayed in (code, totp_for(device).at(now - 30)):  # the same step, and the one before it
        response = client.post("/account/sign-in/second-factor/", {"device": device.persistent_id, "code": replayed})
        assert response.status_code == 200
        assert "already used" in text(response)
        clock.tick(3)  # past django-otp's back-off, so the next attempt is really checked
    response = client.post(
        "/account/sign-in/second-factor/", {"device": device.persistent_id, "code": totp_for(device).at(now + 30)}
    )
    assert response.status_code == 302


def test_otp04_service_refuses_a_code_already_used(person, clock):
    registration = pending_app_registration(person)
    device = registration.app_device
    code = fresh_code(device)
    services.confirm_activation(registration, code=code, actor=person, verified_at=timezone.now())
    device.refresh_from_db()
    assert device.verify_token(code) is False
    clock.tick(2)
    assert device.verify_token(totp_for(device).at(clock().timestamp() - 30)) is False


def test_otp04_later_step_consumes_the_earlier_ones(person, clock):
    device = pending_app_registration(person).app_device
    now = clock().timestamp()
    assert device.verify_token(totp_for(device).at(now + 30)) is True
    for earlier in (now, now - 30):
        clock.tick(2)
        assert device.verify_token(totp_for(device).at(earlier)) is False
    device.refresh_from_db()
    assert device.last_t == totp.current_step(now) + 1


@pytest.mark.postgres
def test_otp04_two_concurrent_submits_give_one_success(transactional_db, make_user):
    """Each round races two threads with the same valid code on their own connection."""
    for round_number in range(5):
        person = make_user(f"racer{round_number}")
        device_pk = pending_app_registration(person).app_device.pk
        code = fresh_code(AuthenticatorAppDevice.objects.get(pk=device_pk))
        # Each request reads the device on its own before the race.
        first, second = (AuthenticatorAppDevice.objects.get(pk=device_pk) for _ in range(2))
        results = race(lambda: first.verify_token(code), lambda: second.verify_token(code))
        assert sorted(results) == [False, True], f"round {round_number}: {results}"


@pytest.mark.postgres
def test_otp04_concurrent_double_submit_of_activation_binds_once(transactional_db, make_user):
    person = make_user("doubleclick")
    registration = pending_app_registration(person)
    code = fresh_code(registration.app_device)

    def submit():
        return services.confirm_activation(registration, code=code, actor=person, verified_at=timezone.now()).status

    outcomes = race(submit, submit)
    assert len(outcomes) == 2 and Registration.Status.ACTIVE in outcomes
    # The slower request either sees the bind or, if it looked before the commit, reports the used code.
    assert set(outcomes) <= {Registration.Status.ACTIVE, "wrong_code", "not_pending", "already_bound"}
    registration.refresh_from_db()
    assert registration.status == Registration.Status.ACTIVE
    assert AuditEvent.objects.filter(action="device.bound").count() == 1


# --- OTP-06 ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("into_step", [0, 5, 29])
@pytest.mark.parametrize(
    ("steps_away", "accepted"), [(-3, False), (-2, False), (-1, True), (0, True), (1, True), (2, False), (3, False)]
)
def test_otp06_one_step_tolerance(person, clock, into_step, steps_away, accepted):
    clock.move_to(datetime.fromtimestamp((totp.current_step() + 1) * 30 + into_step, tz=UTC))
    device = pending_app_registration(person).app_device
    code = totp_for(device).at(clock().timestamp() + 30 * steps_away)
    assert device.verify_token(code) is accepted


def test_otp06_activation_accepts_the_code_of_the_previous_step(client, person, sign_in, clock):
    sign_in(client, person)
    registration = walk_to_activate(client)
    code = totp_for(registration.app_device).at(clock().timestamp() - 30)
    response = client.post(f"/enroll/{registration.pk}/activate/", {"code": code})
    assert response.status_code == 302
    registration.refresh_from_db()
    assert registration.status == Registration.Status.ACTIVE


def test_otp06_activation_refuses_a_code_two_steps_old(client, person, sign_in, clock):
    sign_in(client, person)
    registration = walk_to_activate(client)
    code = totp_for(registration.app_device).at(clock().timestamp() - 60)
    response = client.post(f"/enroll/{registration.pk}/activate/", {"code": code}, follow=True)
    assert response.status_code == 200
    assert errors.WRONG_CODE in text(response)


# --- OTP-07 ------------------------------------------------------------------------------------------


def test_otp07_secret_is_160_random_bits_from_secrets(person, make_user, monkeypatch):
    drawn = []
    real_token_bytes = secrets.token_bytes

    def recording_token_bytes(n=None):
        value = real_token_bytes(n)
        drawn.append(value)
        return value

    monkeypatch.setattr(secrets, "token_bytes", recording_token_bytes)
    first = pending_app_registration(person).app_device
    second = pending_app_registration(make_user("other")).app_device

    assert [len(value) for value in drawn] == [20, 20]
    assert [first.secret_bytes(), second.secret_bytes()] == drawn
    assert first.secret_bytes() != second.secret_bytes()
    assert len(base64.b32decode(totp_for(first).secret)) * 8 >= 160


# --- OTP-08 ------------------------------------------------------------------------------------------


def raw_column(device) -> str:
    table = AuthenticatorAppDevice._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT encrypted_secret FROM {table} WHERE id = %s", [device.pk])  # noqa: S608
        return cursor.fetchone()[0]


def database_dump() -> tuple[str, bytes]:
    """Every row of every table, as text and as raw bytes: what a stolen dump holds."""
    texts, blobs = [], []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        blobs.append(bytes(value))
                    else:
                        texts.append(str(value))
    return "\n".join(texts), b"\n".join(blobs)


def secret_spellings(raw: bytes) -> list[str]:
    return [
        base64.b32encode(raw).decode().rstrip("="),
        base64.b64encode(raw).decode().rstrip("="),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        raw.hex(),
        raw.hex().upper(),
    ]


def test_otp08_column_holds_no_usable_seed(person):
    device = pending_app_registration(person).app_device
    raw = device.secret_bytes()
    column = raw_column(device)
    assert column
    for spelling in secret_spellings(raw):
        assert spelling not in column
    assert raw.decode("latin-1") not in column


def test_otp08_database_dump_holds_no_seed(person, enroll):
    active = enroll(person).app_device
    pending = pending_app_registration(person).app_device
    dump, blobs = database_dump()
    for device in (active, pending):
        raw = device.secret_bytes()
        assert raw not in blobs
        for spelling in secret_spellings(raw):
            assert spelling not in dump


def test_otp08_key_comes_from_settings(person):
    key, other = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(FACTOR_ENCRYPTION_KEYS=[key]):
        device = pending_app_registration(person).app_device
        raw = device.secret_bytes()
        assert Fernet(key.encode()).decrypt(raw_column(device).encode()) == raw
    with override_settings(FACTOR_ENCRYPTION_KEYS=[other, key]):  # rotation: old key still decrypts
        assert device.secret_bytes() == raw
    with override_settings(FACTOR_ENCRYPTION_KEYS=[other]), pytest.raises(InvalidToken):
        device.secret_bytes()
    with pytest.raises(InvalidToken):  # nor does the development key derived from SECRET_KEY
        device.secret_bytes()


def test_otp08_another_key_cannot_verify_codes(person):
    device = pending_app_registration(person).app_device
    code = fresh_code(device)
    # The check fails its caller's whole transaction (no savepoint of its own); this test's own block stands in for it.
    other_key = override_settings(FACTOR_ENCRYPTION_KEYS=[Fernet.generate_key().decode()])
    with other_key, pytest.raises(InvalidToken), transaction.atomic():
        device.verify_token(code)
    device.refresh_from_db()
    assert device.last_t == -1


# --- OTP-10 ------------------------------------------------------------------------------------------


@pytest.fixture
def compare_digest_calls(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def recording(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(totp.hmac, "compare_digest", recording)
    return calls


@pytest.mark.parametrize("right", [True, False])
def test_otp10_codes_are_compared_with_compare_digest(person, compare_digest_calls, clock, right):
    device = pending_app_registration(person).app_device
    window = {totp_for(device).at(clock().timestamp() + 30 * d) for d in (-1, 0, 1)}
    code = fresh_code(device) if right else next(c for c in ("000000", "999999", "123123") if c not in window)
    assert device.verify_token(code) is right
    # Every code in the window is compared, and the submitted code is what each comparison saw.
    assert len(compare_digest_calls) == 3
    assert all(submitted == code for _, submitted in compare_digest_calls)


def test_otp10_compare_digest_decides(person, monkeypatch):
    device = pending_app_registration(person).app_device
    monkeypatch.setattr(totp.hmac, "compare_digest", lambda a, b: False)
    assert device.verify_token(fresh_code(device)) is False


def test_non_ascii_digits_are_a_wrong_code_not_a_crash(signed_in_client, enrolled_user):
    from devices.totp import normalize

    assert normalize("٠١٢٣٤٥") is None
    response = signed_in_client.post("/account/sign-in/confirm/", {"device": "x", "code": "٠١٢٣٤٥"})
    assert response.status_code == 200


def test_a_finished_setup_is_never_confirmed_again_without_a_code(person, clock):
    registration = pending_app_registration(person)
    services.confirm_activation(
        registration, code=fresh_code(registration.app_device), actor=person, verified_at=timezone.now()
    )
    with pytest.raises(ValidationError) as refused:
        services.confirm_activation(registration, code="000000", actor=person, verified_at=timezone.now())
    assert refused.value.code == "not_pending"
