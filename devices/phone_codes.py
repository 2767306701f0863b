"""Codes sent by text or call: generation and keyed hashing (SMS-02).

Imports nothing from this app: the models check sign-in codes with it. The send limits are in
:mod:`devices.services.phone_limits`.
"""

import hashlib
import hmac
import secrets

from django.conf import settings

CODE_DIGITS = 6


def new_code() -> str:
    return str(secrets.randbelow(10**CODE_DIGITS)).zfill(CODE_DIGITS)


def _hash_key() -> bytes:
    # A key from the environment: a database dump alone cannot brute-force 10^6 codes.
    keys = settings.FACTOR_ENCRYPTION_KEYS or [settings.SECRET_KEY]
    return hashlib.sha256(b"phone-code:" + keys[0].encode()).digest()


def hash_code(verification_salt: str, code: str) -> str:
    return hmac.new(_hash_key(), f"{verification_salt}:{code}".encode(), hashlib.sha256).hexdigest()


def code_matches(verification, code: str) -> bool:
    code = "".join((code or "").split())
    if len(code) != CODE_DIGITS or not (code.isascii() and code.isdigit()):
        return False
    return hmac.compare_digest(verification.code_hash, hash_code(_salt(verification), code))


def _salt(verification) -> str:
    return f"{verification.user_id}:{verification.number}:{verification.purpose}:{verification.expires_at.isoformat()}"


def seal(verification, code: str) -> None:
    """Set the verification's hash for ``code``; the salt binds it to this person, number, purpose and expiry."""
    verification.code_hash = hash_code(_salt(verification), code)
