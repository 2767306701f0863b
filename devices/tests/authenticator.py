"""A software security key for tests: real WebAuthn responses, signed with a real P-256 key.

It builds what a browser hands the page after ``navigator.credentials.create()``
(attestation "none": authenticator data with the attested credential and its
COSE key, in a CBOR attestation object) and after ``.get()`` (authenticator
data and an ES256 signature over it and the client data's hash), following the
W3C WebAuthn structures. py_webauthn checks these exactly as it checks a real
key's answers; nothing in the server is bypassed.
"""

import base64
import hashlib
import json
import secrets
import struct

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

FLAG_USER_PRESENT = 0x01
FLAG_USER_VERIFIED = 0x04
FLAG_BACKUP_ELIGIBLE = 0x08
FLAG_BACKED_UP = 0x10
FLAG_ATTESTED_CREDENTIAL = 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class ExcludedCredential(Exception):
    """What a browser raises (InvalidStateError) when the key holds a credential in ``excludeCredentials``."""


class SoftwareKey:
    """One credential on one key. ``counter_step=0`` is a key without a signature counter (always 0).

    A passkey is ``resident`` (it keeps the user handle and hands it back), and may be ``backup_eligible`` and
    ``backed_up`` (synced); ``verifies_user=False`` plays an authenticator that cannot check who holds it.
    """

    def __init__(
        self,
        *,
        rp_id: str,
        origin: str,
        sign_count: int = 0,
        counter_step: int = 1,
        resident: bool = False,
        verifies_user: bool = True,
        backup_eligible: bool = False,
        backed_up: bool = False,
    ):
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = secrets.token_bytes(32)
        self.sign_count = sign_count
        self.counter_step = counter_step
        self.rp_id = rp_id
        self.origin = origin
        self.resident = resident
        self.verifies_user = verifies_user
        self.backup_eligible = backup_eligible
        self.backed_up = backed_up
        self.user_handle: bytes | None = None

    def _flags(self) -> int:
        flags = FLAG_USER_PRESENT | (FLAG_USER_VERIFIED if self.verifies_user else 0)
        return flags | (FLAG_BACKUP_ELIGIBLE if self.backup_eligible else 0) | (FLAG_BACKED_UP if self.backed_up else 0)

    @property
    def id(self) -> str:
        return b64url(self.credential_id)

    def _cose_public_key(self) -> bytes:
        numbers = self.private_key.public_key().public_numbers()
        # COSE_Key: kty EC2 (2), alg ES256 (-7), crv P-256 (1), x, y
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    def _client_data(self, kind: str, options: dict, origin: str | None) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": options["challenge"], "origin": origin or self.origin, "crossOrigin": False}
        ).encode()

    def _rp_hash(self, rp_id: str | None) -> bytes:
        return hashlib.sha256((rp_id or self.rp_id).encode()).digest()

    def create(
        self, options, *, origin: str | None = None, rp_id: str | None = None, honour_exclude: bool = True
    ) -> str:
        """The JSON a page would post after ``navigator.credentials.create(options)``.

        ``honour_exclude=False`` plays a client that ignores ``excludeCredentials``,
        as an attacker's script would, so the server's own refusal can be tested.
        """
        options = json.loads(options) if isinstance(options, str) else options
        excluded = {descriptor["id"] for descriptor in options.get("excludeCredentials", [])}
        if honour_exclude and self.id in excluded:
            raise ExcludedCredential(self.id)
        if self.resident:
            padded = options["user"]["id"] + "=" * (-len(options["user"]["id"]) % 4)
            self.user_handle = base64.urlsafe_b64decode(padded)
        client_data = self._client_data("webauthn.create", options, origin)
        extensions = {"credProps": {"rk": self.resident}} if options.get("extensions", {}).get("credProps") else {}
        auth_data = (
            self._rp_hash(rp_id)
            + bytes([self._flags() | FLAG_ATTESTED_CREDENTIAL])
            + struct.pack(">I", self.sign_count)
            + bytes(16)  # AAGUID: all zeros, as with attestation "none"
            + struct.pack(">H", len(self.credential_id))
            + self.credential_id
            + self._cose_public_key()
        )
        attestation_object = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return json.dumps(
            {
                "id": self.id,
                "rawId": self.id,
                "type": "public-key",
                "response": {
                    "clientDataJSON": b64url(client_data),
                    "attestationObject": b64url(attestation_object),
                    "transports": ["internal"] if self.resident else ["usb"],
                },
                "clientExtensionResults": extensions,
                "authenticatorAttachment": "cross-platform",
            }
        )

    def get(
        self, options, *, origin: str | None = None, rp_id: str | None = None, sign_count: int | None = None
    ) -> str:
        """The JSON a page would post after ``navigator.credentials.get(options)``, signed by this key.

        The counter moves on by ``counter_step`` unless ``sign_count`` says what to sign.
        """
        options = json.loads(options) if isinstance(options, str) else options
        if sign_count is None:
            self.sign_count += self.counter_step
            sign_count = self.sign_count
        client_data = self._client_data("webauthn.get", options, origin)
        auth_data = self._rp_hash(rp_id) + bytes([self._flags()]) + struct.pack(">I", sign_count)
        signature = self.private_key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return json.dumps(
            {
                "id": self.id,
                "rawId": self.id,
                "type": "public-key",
                "response": {
                    "clientDataJSON": b64url(client_data),
                    "authenticatorData": b64url(auth_data),
                    "signature": b64url(signature),
                    "userHandle": b64url(self.user_handle) if self.user_handle else None,
                },
                "clientExtensionResults": {},
                "authenticatorAttachment": "cross-platform",
            }
        )
