"""Security keys (WebAuthn): registration and sign-in with real WebAuthn responses, and every way they are refused.

The responses come from a software key (``authenticator.SoftwareKey``): a
real P-256 key pair, real authenticator data and signatures, checked by
py_webauthn as a hardware key's would be. Nothing in the server is faked."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from devices import errors, services
from devices.models import Registration, SecurityKeyDevice, WebAuthnChallenge
from devices.services import security_keys
from devices.webauthn import SessionChallenge, user_handle
from identity.audit import verify_chain
from identity.models import AuditEvent
from identity.services import SecondFactorOutcome
from testsupport import race

from .authenticator import ExcludedCredential, b64url
from .helpers import (
    IP,
    RP_ID,
    answer,
    events,
    new_key,
    pending_key,
    register,
    registration_challenge,
    sign_in_challenge,
)

pytestmark = pytest.mark.usefixtures("relying_party")

# --- Registration ---------------------------------------------------------------------------------


def bind_key(person, registration, response_json, claim, label="Key"):
    """The person registers their own key in the wizard, just after a second factor."""
    return security_keys.register_security_key(
        person,
        registration=registration,
        response_json=response_json,
        challenge=claim,
        label=label,
        actor=person,
        verified_at=timezone.now(),
    )


def test_registration_options_pin_relying_party_and_ask_no_attestation(person, clock):
    registration = pending_key(person)
    options, claim = registration_challenge(person, registration=registration)
    assert options["rp"] == {"id": RP_ID, "name": "Example Medical School"}
    assert options["attestation"] == "none"
    assert options["authenticatorSelection"]["userVerification"] == "preferred"
    assert options["user"]["name"] == person.username
    assert options["user"]["id"] == b64url(user_handle(person))
    row = WebAuthnChallenge.objects.get(pk=claim.challenge_id)
    assert len(bytes(row.challenge)) >= 32
    assert options["challenge"] == b64url(bytes(row.challenge))
    assert row.ceremony == "register" and row.registration == registration and row.consumed_at is None
    assert row.session_binding != claim.session_key  # only its hash is stored
    assert row.expires_at - row.created_at == timedelta(minutes=5)


def test_registration_binds_the_key_with_the_persons_name_for_it(person):
    key = new_key(sign_count=7)
    registration = register(person, key, label="  Blue key on my keyring ")
    registration.refresh_from_db()
    assert registration.status == Registration.Status.ACTIVE and registration.kind == "security_key"
    assert registration.label == "Blue key on my keyring"
    device = registration.security_key_device
    assert device.confirmed and device.user == person
    assert device.credential_id == key.id and device.sign_count == 7 and device.transports == ["usb"]
    assert device.name == "Blue key on my keyring: security key"
    assert device.registered_by is None
    assert not WebAuthnChallenge.objects.filter(consumed_at=None).exists()


def test_ac06_binding_a_key_writes_one_device_bound_event(person):
    registration = pending_key(person)
    options, claim = registration_challenge(person, registration=registration)
    before = AuditEvent.objects.count()
    security_keys.register_security_key(
        person,
        registration=registration,
        response_json=new_key().create(options),
        challenge=claim,
        label="Blue key",
        actor=person,
        ip=IP,
        verified_at=timezone.now(),
    )
    recorded = list(AuditEvent.objects.order_by("sequence")[before:])
    assert [(e.action, e.actor, e.subject, e.ip, e.details) for e in recorded] == [
        (
            "device.bound",
            person,
            person,
            IP,
            {"registration": registration.pk, "kind": "security_key", "factor": "security_key"},
        )
    ]
    assert verify_chain() is None


def test_registration_options_exclude_the_persons_keys_in_use(person, make_user):
    first, second, removed = new_key(), new_key(), new_key()
    register(person, first)
    register(person, second)
    retired = register(person, removed)
    services.retire_registration(retired, actor=person, verified_at=timezone.now())
    someone_else = make_user("someone")
    register(someone_else, new_key())

    options, _ = registration_challenge(person, registration=pending_key(person))
    excluded = {descriptor["id"]: descriptor for descriptor in options["excludeCredentials"]}
    assert set(excluded) == {first.id, second.id}
    assert excluded[first.id]["transports"] == ["usb"]
    # The key itself refuses to register again, as a browser does on excludeCredentials.
    with pytest.raises(ExcludedCredential):
        first.create(options)


@pytest.mark.parametrize(
    ("create_kwargs", "detail"),
    [
        ({"origin": "https://mfa.example.edu.evil.test"}, "origin"),
        ({"origin": "http://mfa.example.edu"}, "origin"),
        ({"rp_id": "evil.test"}, "RP ID"),
    ],
    ids=["wrong origin", "http origin", "wrong RP ID"],
)
def test_registration_from_the_wrong_origin_or_rp_id_is_refused(person, create_kwargs, detail):
    registration = pending_key(person)
    options, claim = registration_challenge(person, registration=registration)
    response = new_key().create(options, **create_kwargs)
    with pytest.raises(ValidationError) as refused:
        bind_key(person, registration, response, claim)
    assert refused.value.messages == [errors.KEY_REGISTRATION_FAILED]
    assert not SecurityKeyDevice.objects.exists()
    registration.refresh_from_db()
    assert registration.status == Registration.Status.PENDING
    event = events("enrollment.security_key_rejected").get()
    assert event.details["reason"] == "invalid_response" and detail in event.details["detail"]
    # The challenge is spent all the same.
    assert WebAuthnChallenge.objects.get(pk=claim.challenge_id).consumed_at is not None


def test_registration_response_replayed_is_refused(person):
    registration = pending_key(person)
    options, claim = registration_challenge(person, registration=registration)
    response = new_key().create(options)
    bind_key(person, registration, response, claim)
    again = pending_key(person)
    # The same answer to the same (spent) challenge, then to a fresh one: both refused.
    with pytest.raises(ValidationError) as refused:
        bind_key(person, again, response, claim)
    assert refused.value.messages == [errors.KEY_CHALLENGE_INVALID]
    _, fresh = registration_challenge(person, registration=again)
    with pytest.raises(ValidationError) as refused:
        bind_key(person, again, response, fresh)
    assert refused.value.messages == [errors.KEY_REGISTRATION_FAILED]
    assert SecurityKeyDevice.objects.count() == 1
    assert [e.details["reason"] for e in events("enrollment.security_key_rejected").order_by("sequence")] == [
        "challenge_used",
        "invalid_response",
    ]


def test_registration_challenge_expires(person, clock, settings):
    registration = pending_key(person)
    options, claim = registration_challenge(person, registration=registration)
    clock.tick(settings.WEBAUTHN_CHALLENGE_TTL.total_seconds() + 1)
    with pytest.raises(ValidationError) as refused:
        bind_key(person, registration, new_key().create(options), claim)
    assert refused.value.messages == [errors.KEY_CHALLENGE_INVALID]
    assert events("enrollment.security_key_rejected").get().details["reason"] == "challenge_expired"
    assert not SecurityKeyDevice.objects.exists()


def test_registration_challenge_from_another_session_is_refused(person):
    registration = pending_key(person)
    options, claim = registration_challenge(person, session="the-persons-session", registration=registration)
    elsewhere = SessionChallenge(claim.challenge_id, "another-session")
    with pytest.raises(ValidationError):
        bind_key(person, registration, new_key().create(options), elsewhere)
    assert events("enrollment.security_key_rejected").get().details["reason"] == "other_session"
    assert not SecurityKeyDevice.objects.exists()
    # Refused unspent: it was never this session's to spend.
    assert WebAuthnChallenge.objects.get(pk=claim.challenge_id).consumed_at is None


def test_registration_challenge_belongs_to_its_person_ceremony_and_registration(person, make_user, key_holder):
    _, key = key_holder
    other = make_user("other")
    registration = pending_key(other)
    # A sign-in challenge of this session cannot register a key...
    sign_in_options, sign_in_claim = sign_in_challenge(person, session="session-a")
    with pytest.raises(ValidationError):
        bind_key(person, None, new_key().create(sign_in_options), sign_in_claim, label="K")
    # ...another person's registration challenge cannot bind a key to Ann...
    options, claim = registration_challenge(other, session="session-a", registration=registration)
    with pytest.raises(ValidationError):
        bind_key(person, None, new_key().create(options), claim, label="K")
    # ...and a challenge for one pending registration does not finish another.
    mine = pending_key(person)
    options, claim = registration_challenge(person, session="session-a")
    with pytest.raises(ValidationError):
        bind_key(person, mine, new_key().create(options), claim, label="K")
    assert SecurityKeyDevice.objects.count() == 1


def test_same_credential_registered_twice_is_refused_even_for_another_person(person, make_user):
    key = new_key()
    register(person, key)
    with pytest.raises(ValidationError) as refused:
        register(person, key, honour_exclude=False)
    assert refused.value.messages == [errors.KEY_ALREADY_REGISTERED]
    other = make_user("other")
    with pytest.raises(ValidationError) as refused:
        register(other, key, honour_exclude=False)
    assert refused.value.messages == [errors.KEY_ALREADY_REGISTERED]
    assert SecurityKeyDevice.objects.filter(credential_id=key.id).count() == 1
    assert SecurityKeyDevice.objects.get().user == person
    assert [
        (e.subject, e.details["reason"]) for e in events("enrollment.security_key_rejected").order_by("sequence")
    ] == [
        (person, "credential_registered"),
        (other, "credential_registered"),
    ]
    assert not Registration.objects.filter(user=other, status=Registration.Status.ACTIVE).exists()


def test_bnd04_a_removed_keys_credential_is_never_bound_again(person):
    key = new_key()
    first = register(person, key)
    register(person, new_key())
    services.retire_registration(first, actor=person, verified_at=timezone.now())
    with pytest.raises(ValidationError) as refused:
        register(person, key)  # no longer in excludeCredentials: the server refuses it
    assert refused.value.messages == [errors.KEY_ALREADY_REGISTERED]


def test_registration_needs_a_name(person):
    registration = pending_key(person)
    options, claim = registration_challenge(person, registration=registration)
    for label in ("", "   ", "x" * 65):
        with pytest.raises(ValidationError) as refused:
            bind_key(person, registration, new_key().create(options), claim, label=label)
        assert refused.value.messages == [errors.KEY_LABEL_INVALID]
    # A refused name leaves the challenge for the corrected try.
    assert WebAuthnChallenge.objects.get(pk=claim.challenge_id).consumed_at is None


# --- Races (PostgreSQL: each thread on its own connection) -----------------------------------------


@pytest.mark.postgres
def test_one_assertion_posted_twice_at_once_signs_in_once(transactional_db, make_user):
    for round_number in range(3):
        person = make_user(f"racer{round_number}")
        key = new_key()
        register(person, key)
        options, claim = sign_in_challenge(person)
        assertion = key.get(options)
        results = race(*[lambda: answer(person, assertion, claim)] * 2)
        # The second finds the challenge spent: nothing checked, nothing toward the lockout (a double click).
        assert sorted(results) == sorted([SecondFactorOutcome.OK, security_keys.CHALLENGE_NOT_OPEN]), results
    assert events("signin.second_factor_ok").count() == 3


@pytest.mark.postgres
def test_one_credential_bound_by_two_people_at_once_binds_once(transactional_db, make_user):
    key = new_key()
    people = [make_user("first"), make_user("second")]
    prepared = []
    for person in people:
        registration = pending_key(person)
        options, claim = registration_challenge(person, registration=registration)
        prepared.append((person, registration, key.create(options), claim))

    def bind(person, registration, response, claim):
        return lambda: bind_key(person, registration, response, claim).status

    results = race(*[bind(*args) for args in prepared])
    assert sorted(results) == sorted([Registration.Status.ACTIVE, "duplicate"]), results
    assert SecurityKeyDevice.objects.filter(credential_id=key.id).count() == 1
