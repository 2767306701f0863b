"""Helpers and fixtures shared by the tests of registering security keys and of signing in with a security key, on its own and through the views."""

import json

import pytest
from django.utils import timezone

from devices import services
from devices.models import Registration
from devices.services import security_keys
from devices.webauthn import SessionChallenge

from .authenticator import SoftwareKey

RP_ID = "mfa.example.edu"
ORIGIN = "https://mfa.example.edu"
IP = "192.0.2.10"


@pytest.fixture(autouse=True)
def relying_party(settings):
    settings.WEBAUTHN_RP_ID = RP_ID
    settings.WEBAUTHN_ORIGINS = [ORIGIN]
    settings.WEBAUTHN_RP_NAME = "Example Medical School"


def new_key(**kwargs) -> SoftwareKey:
    return SoftwareKey(rp_id=RP_ID, origin=ORIGIN, **kwargs)


def pending_key(person) -> Registration:
    return services.start_enrollment(person, kind=Registration.Kind.SECURITY_KEY, verified_at=timezone.now())


def registration_challenge(person, *, session="session-a", registration=None):
    options, challenge = security_keys.start_security_key_registration(
        person, session_key=session, registration=registration
    )
    return json.loads(options), SessionChallenge(challenge.pk, session)


def register(person, key, *, session="session-a", label="Blue key", actor=None, **create_kwargs) -> Registration:
    """The wizard's step, as the views drive it: a pending registration, options, the key's answer."""
    registration = pending_key(person)
    options, claim = registration_challenge(person, session=session, registration=registration)
    return security_keys.register_security_key(
        person,
        registration=registration,
        response_json=key.create(options, **create_kwargs),
        challenge=claim,
        label=label,
        actor=actor or person,
        ip=IP,
        verified_at=timezone.now(),
    )


def sign_in_challenge(person, *, session="session-b"):
    options, challenge = security_keys.start_security_key_sign_in(person, session_key=session)
    return json.loads(options), SessionChallenge(challenge.pk, session)


def answer(person, response_json: str, claim: SessionChallenge) -> str:
    outcome, _ = security_keys.verify_security_key(person, response_json=response_json, challenge=claim, ip=IP)
    return outcome


def sign_in(person, key, *, session="session-b", **get_kwargs) -> str:
    options, claim = sign_in_challenge(person, session=session)
    return answer(person, key.get(options, **get_kwargs), claim)


def failures(person) -> int:
    person.refresh_from_db()
    return person.second_factor_failures


@pytest.fixture(name="key_holder")
def key_holder_fixture(person):
    """Ann, with one registered security key (and no other device)."""
    key = new_key()
    register(person, key)
    return person, key
