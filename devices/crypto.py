"""Encryption at rest for factor secrets and queued message bodies (OTP-08).

The keys come from settings (the environment), never from the database, so a
database dump holds no usable seed.
"""

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings


def derived_dev_key(secret_key: str) -> str:
    digest = hashlib.sha256(b"factor-encryption:" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


@lru_cache(maxsize=8)
def _box(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys or (derived_dev_key(secret_key),)])


def _current_box() -> MultiFernet:
    # Read on every call, so a changed setting (a key rotation in tests) takes effect; built once per value.
    return _box(tuple(settings.FACTOR_ENCRYPTION_KEYS), settings.SECRET_KEY)


def encrypt(plain: bytes) -> str:
    return _current_box().encrypt(plain).decode("ascii")


def decrypt(token: str) -> bytes:
    return _current_box().decrypt(token.encode("ascii"))
