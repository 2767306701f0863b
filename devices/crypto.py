"""Encryption at rest for factor secrets and queued message bodies (OTP-08).

The keys come from settings (the environment), never from the database, so a
database dump holds no usable seed.
"""

import base64
import hashlib
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

# Every (model, field name) holding a token of these keys, registered by its app when it is ready, so that key
# rotation (``devices.services.keys``) reaches them all without this app importing the apps above it.
ENCRYPTED_FIELDS: list[tuple[Any, str]] = []  # (model class, field name)


def register_encrypted_field(model, field: str) -> None:
    """Add ``model.field`` (a text field of tokens, blank when empty) to what rotation reaches; one per model."""
    if (model, field) in ENCRYPTED_FIELDS:
        return
    if any(known is model for known, _ in ENCRYPTED_FIELDS):
        raise ValueError(f"{model.__name__} already has an encrypted field registered")
    ENCRYPTED_FIELDS.append((model, field))


def derived_dev_key(secret_key: str) -> str:
    digest = hashlib.sha256(b"factor-encryption:" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


@lru_cache(maxsize=8)
def _fernets(keys: tuple[str, ...], secret_key: str) -> tuple[Fernet, ...]:
    return tuple(Fernet(key) for key in keys or (derived_dev_key(secret_key),))


@lru_cache(maxsize=8)
def _box(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    return MultiFernet(list(_fernets(keys, secret_key)))


def _current() -> tuple[tuple[str, ...], str]:
    # Read on every call, so a changed setting (a key rotation in tests) takes effect; built once per value.
    return tuple(settings.FACTOR_ENCRYPTION_KEYS), settings.SECRET_KEY


def encrypt(plain: bytes) -> str:
    return _box(*_current()).encrypt(plain).decode("ascii")


def decrypt(token: str) -> bytes:
    return _box(*_current()).decrypt(token.encode("ascii"))


def is_under_first_key(token: str) -> bool:
    """Whether the first (encrypting) key reads ``token``: a Fernet token does not name its key, so try it."""
    try:
        _fernets(*_current())[0].decrypt(token.encode("ascii"))
    except InvalidToken:
        return False
    return True


def reencrypt(token: str) -> str:
    """``token`` encrypted again under the first key (``MultiFernet.rotate``: its original timestamp is kept).

    Raises ``InvalidToken`` when no configured key reads it.
    """
    return _box(*_current()).rotate(token.encode("ascii")).decode("ascii")
