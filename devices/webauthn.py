"""The WebAuthn ceremonies on py_webauthn: the relying party from settings, the challenges in the database.

This module builds the options a browser passes to ``navigator.credentials``
and checks what comes back; the state changes that use it (binding a key,
signing in with one) are in :mod:`devices.services.security_keys`.

- The RP ID and the accepted origins are ``WEBAUTHN_RP_ID`` and
  ``WEBAUTHN_ORIGINS``, never the request's Host header.
- A challenge is 32 random bytes from ``secrets`` in a :class:`WebAuthnChallenge`
  row: for one person, one ceremony and one session (kept as the SHA-256 of
  the session key), single-use, and expiring after ``WEBAUTHN_CHALLENGE_TTL``
  (REL-07: security state lives in the database).
"""

import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta

import webauthn
from django.conf import settings
from django.utils import timezone
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    parse_authentication_credential_json,
    parse_registration_credential_json,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AttestationConveyancePreference,
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from .models import SecurityKeyDevice, WebAuthnChallenge, WebAuthnUserHandle

logger = logging.getLogger(__name__)

CHALLENGE_BYTES = 32
USER_HANDLE_BYTES = 32  # WA-03 asks for at least 128 bits
# Malformed input from a browser surfaces from py_webauthn and its parsers (cbor2, base64) as these.
_BAD_INPUT = (WebAuthnException, ValueError, TypeError, KeyError, IndexError)


class CeremonyRefused(Exception):
    """A challenge or a response did not pass. ``reason`` is a short word for logs and the audit log."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail[:200]


@dataclass(frozen=True)
class SessionChallenge:
    """Which challenge a request answers: the id kept in its session, and that session's key."""

    challenge_id: int | None
    session_key: str | None


@dataclass(frozen=True)
class NewCredential:
    """A verified registration response: what a new :class:`SecurityKeyDevice` stores."""

    credential_id: str
    public_key: bytes
    sign_count: int
    transports: list[str]
    aaguid: str
    user_verified: bool = False
    backup_eligible: bool = False
    backed_up: bool = False
    # The browser's credProps answer: True or False when it says, None when it does not.
    discoverable: bool | None = None


def session_binding(session_key: str) -> str:
    return hashlib.sha256(session_key.encode()).hexdigest()


def user_handle(user) -> bytes:
    """The person's WebAuthn user id: random, made on first use and kept (WA-03); no ID or name on the key."""
    row, _ = WebAuthnUserHandle.objects.get_or_create(
        user=user, defaults={"handle": secrets.token_bytes(USER_HANDLE_BYTES)}
    )
    return bytes(row.handle)


def _timeout_ms() -> int:
    return int(settings.WEBAUTHN_CHALLENGE_TTL.total_seconds() * 1000)


def _descriptor(device: SecurityKeyDevice) -> PublicKeyCredentialDescriptor:
    transports = []
    for name in device.transports or []:
        try:
            transports.append(AuthenticatorTransport(name))
        except ValueError:
            continue
    return PublicKeyCredentialDescriptor(id=base64url_to_bytes(device.credential_id), transports=transports or None)


def issue_challenge(
    user, *, ceremony: str, session_key: str, registration=None, client_address: str | None = None
) -> WebAuthnChallenge:
    """Write a fresh challenge for ``user``'s ``ceremony`` in the session ``session_key``.

    ``user`` is None for a passwordless sign-in, where nobody is known until the passkey answers; its
    ``client_address`` is kept, to count such challenges per address.

    An earlier open challenge of the same person, ceremony and session is
    withdrawn (marked consumed), so only the newest request can be answered.
    Call inside a transaction.
    """
    if not session_key:
        raise ValueError("a WebAuthn challenge needs a saved session")
    now = timezone.now()
    binding = session_binding(session_key)
    WebAuthnChallenge.objects.filter(user=user, ceremony=ceremony, session_binding=binding, consumed_at=None).update(
        consumed_at=now
    )
    # Spent rows are worth nothing after a day; keep the table small without a periodic task.
    WebAuthnChallenge.objects.filter(user=user, expires_at__lt=now - timedelta(days=1)).delete()
    return WebAuthnChallenge.objects.create(
        user=user,
        ceremony=ceremony,
        registration=registration,
        challenge=secrets.token_bytes(CHALLENGE_BYTES),
        session_binding=binding,
        expires_at=now + settings.WEBAUTHN_CHALLENGE_TTL,
        client_address=client_address,
    )


def claim_challenge(claim: SessionChallenge, *, user, ceremony: str) -> WebAuthnChallenge:
    """Lock and consume the challenge ``claim`` names; raise :class:`CeremonyRefused` unless it may be answered.

    It must be open (not used, not expired) and issued for this person, this
    ceremony and this session. Call inside the transaction of the outcome, so
    the challenge is spent whether the response then passes or not.
    """
    if not claim.challenge_id or not claim.session_key:
        raise CeremonyRefused("no_challenge")
    row = WebAuthnChallenge.objects.select_for_update().filter(pk=claim.challenge_id).first()
    if row is None or row.user_id != getattr(user, "pk", None) or row.ceremony != ceremony:
        raise CeremonyRefused("no_challenge")
    if not hmac.compare_digest(row.session_binding, session_binding(claim.session_key)):
        raise CeremonyRefused("other_session")
    if row.consumed_at is not None:
        raise CeremonyRefused("challenge_used")
    now = timezone.now()
    if now >= row.expires_at:
        raise CeremonyRefused("challenge_expired")
    row.consumed_at = now
    row.save(update_fields=["consumed_at"])
    return row


def registration_options(user, challenge: WebAuthnChallenge, *, exclude, passkey: bool = False) -> str:
    """JSON options for ``navigator.credentials.create()``.

    ``exclude`` (the person's keys in use) goes out as ``excludeCredentials``,
    so a key already registered refuses to register again in the browser.
    No attestation is asked for: which key model it is does not matter here,
    and "none" asks the person no extra privacy question. A ``passkey`` must be
    discoverable and verify the person (WA-01); the browser is asked to say
    whether it made it discoverable (the ``credProps`` extension).
    """
    required = (ResidentKeyRequirement.REQUIRED, UserVerificationRequirement.REQUIRED)
    preferred = (ResidentKeyRequirement.DISCOURAGED, UserVerificationRequirement.PREFERRED)
    resident_key, user_verification = required if passkey else preferred
    options = webauthn.generate_registration_options(
        rp_id=settings.WEBAUTHN_RP_ID,
        rp_name=settings.WEBAUTHN_RP_NAME,
        user_id=user_handle(user),
        user_name=user.get_username(),
        user_display_name=user.get_full_name() or user.get_username(),
        challenge=bytes(challenge.challenge),
        timeout=_timeout_ms(),
        attestation=AttestationConveyancePreference.NONE,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=resident_key, user_verification=user_verification
        ),
        exclude_credentials=[_descriptor(device) for device in exclude],
    )
    if not passkey:
        return webauthn.options_to_json(options)
    # py_webauthn has no parameter for extensions; the browser reads them from the options as they stand.
    body = json.loads(webauthn.options_to_json(options))
    body["extensions"] = {"credProps": True}
    return json.dumps(body)


def authentication_options(challenge: WebAuthnChallenge, *, devices, passwordless: bool = False) -> str:
    """JSON options for ``navigator.credentials.get()``, allowing only ``devices`` (the person's keys in use).

    ``passwordless``: no list (the browser offers the passkeys it holds for this site) and the person must be
    verified (WA-02).
    """
    options = webauthn.generate_authentication_options(
        rp_id=settings.WEBAUTHN_RP_ID,
        challenge=bytes(challenge.challenge),
        timeout=_timeout_ms(),
        allow_credentials=[_descriptor(device) for device in devices],
        user_verification=UserVerificationRequirement.REQUIRED
        if passwordless
        else UserVerificationRequirement.PREFERRED,
    )
    return webauthn.options_to_json(options)


def _refused(reason: str, exc: Exception) -> CeremonyRefused:
    logger.info("WebAuthn response refused: %s (%s)", reason, exc)
    return CeremonyRefused(reason, str(exc))


def _reported_discoverable(response_json: str) -> bool | None:
    """What the browser's ``credProps`` extension said about the new credential (``rk``), or None if nothing."""
    try:
        reported = json.loads(response_json).get("clientExtensionResults", {}).get("credProps", {}).get("rk")
    except (ValueError, AttributeError):
        return None
    return reported if isinstance(reported, bool) else None


def verify_registration(
    response_json: str, *, challenge: WebAuthnChallenge, require_user_verification: bool = False
) -> NewCredential:
    """Check a ``navigator.credentials.create()`` response against the claimed challenge, RP ID and origins.

    With ``require_user_verification`` a response whose authenticator did not verify the person is refused.
    """
    try:
        credential = parse_registration_credential_json(response_json)
        verified = webauthn.verify_registration_response(
            credential=credential,
            expected_challenge=bytes(challenge.challenge),
            expected_rp_id=settings.WEBAUTHN_RP_ID,
            expected_origin=list(settings.WEBAUTHN_ORIGINS),
            require_user_verification=require_user_verification,
        )
    except _BAD_INPUT as exc:
        raise _refused("invalid_response", exc) from exc
    # py_webauthn returns the id inside the signed authenticator data; the outer id must name the same credential.
    if not hmac.compare_digest(verified.credential_id, credential.raw_id):
        raise CeremonyRefused("credential_id_mismatch")
    return NewCredential(
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        transports=[transport.value for transport in credential.response.transports or []],
        aaguid=verified.aaguid,
        user_verified=verified.user_verified,
        backup_eligible=verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE,
        backed_up=verified.credential_backed_up,
        discoverable=_reported_discoverable(response_json),
    )


def credential_id_of(response_json: str) -> str | None:
    """The credential id an assertion claims to come from, or None when the response is not an assertion."""
    try:
        return parse_authentication_credential_json(response_json).id
    except _BAD_INPUT:
        return None


def user_handle_of(response_json: str) -> bytes | None:
    """The user handle a passkey's assertion names (discoverable credentials carry one), or None."""
    try:
        return parse_authentication_credential_json(response_json).response.user_handle
    except _BAD_INPUT:
        return None


def verify_assertion_response(
    response_json: str,
    *,
    challenge: WebAuthnChallenge,
    device: SecurityKeyDevice,
    require_user_verification: bool = False,
) -> int:
    """Check a ``navigator.credentials.get()`` response by ``device``'s key; return the signed sign counter.

    With ``require_user_verification`` (a passwordless sign-in, WA-02) an assertion without the UV flag is refused.

    The counter itself is left to the caller: py_webauthn compares it before
    it checks the signature, and only a response the key really signed may be
    reported as a cloned key.
    """
    try:
        credential = parse_authentication_credential_json(response_json)
    except _BAD_INPUT as exc:
        raise _refused("invalid_response", exc) from exc
    if not hmac.compare_digest(credential.id.encode(), device.credential_id.encode()):
        raise CeremonyRefused("other_credential")
    try:
        verified = webauthn.verify_authentication_response(
            credential=credential,
            expected_challenge=bytes(challenge.challenge),
            expected_rp_id=settings.WEBAUTHN_RP_ID,
            expected_origin=list(settings.WEBAUTHN_ORIGINS),
            credential_public_key=bytes(device.public_key),
            credential_current_sign_count=0,
            require_user_verification=require_user_verification,
        )
    except _BAD_INPUT as exc:
        raise _refused("invalid_response", exc) from exc
    return verified.new_sign_count
