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


def _hash_keys() -> list[bytes]:
    # Keys from the environment: a database dump alone cannot brute-force 10^6 codes. As with encryption, the first
    # key hashes and every key still matches, so a code texted just before a key rotation still works.
    keys = settings.FACTOR_ENCRYPTION_KEYS or [settings.SECRET_KEY]
    return [hashlib.sha256(b"phone-code:" + key.encode()).digest() for key in keys]


def _hash(key: bytes, verification_salt: str, code: str) -> str:
    return hmac.new(key, f"{verification_salt}:{code}".encode(), hashlib.sha256).hexdigest()


def hash_code(verification_salt: str, code: str) -> str:
    return _hash(_hash_keys()[0], verification_salt, code)


def code_matches(verification, code: str) -> bool:
    code = "".join((code or "").split())
    if len(code) != CODE_DIGITS or not (code.isascii() and code.isdigit()):
        return False
    salt = _salt(verification)
    # Every key compared, none skipped after a match: the time taken does not say which key matched.
    matches = [hmac.compare_digest(verification.code_hash, _hash(key, salt, code)) for key in _hash_keys()]
    return any(matches)


def _salt(verification) -> str:
    return f"{verification.user_id}:{verification.number}:{verification.purpose}:{verification.expires_at.isoformat()}"


def seal(verification, code: str) -> None:
    """Set the verification's hash for ``code``; the salt binds it to this person, number, purpose and expiry."""
    verification.code_hash = hash_code(_salt(verification), code)
