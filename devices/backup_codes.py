"""Backup codes and help-desk bypass codes: 80 random bits each, only a keyed hash stored, single-use (BND-06,
BND-10, OTP-10)."""

import base64
import hashlib
import hmac
import secrets

from django.conf import settings
from django.utils import timezone

CODE_COUNT = 10
CODE_BYTES = 10  # 80 bits


def new_code() -> str:
    raw = base64.b32encode(secrets.token_bytes(CODE_BYTES)).decode().lower()
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


def normalize(code: str) -> str:
    return "".join(ch for ch in (code or "").lower() if ch.isalnum())


def _hash_keys() -> list[bytes]:
    keys = settings.FACTOR_ENCRYPTION_KEYS or [settings.SECRET_KEY]
    return [hashlib.sha256(b"backup-code:" + key.encode()).digest() for key in keys]


def hash_code(code: str, key: bytes | None = None) -> str:
    """The keyed hash stored for ``code``: under the current (first) key unless one is given."""
    return hmac.new(key or _hash_keys()[0], normalize(code).encode(), hashlib.sha256).hexdigest()


def store_new_codes(device, count: int = CODE_COUNT) -> list[str]:
    """Make ``count`` codes for ``device``'s set, store only their keyed hashes, return them in clear (once)."""
    codes = [new_code() for _ in range(count)]
    code_model = device.codes.model
    code_model.objects.bulk_create(code_model(device=device, code_hash=hash_code(c)) for c in codes)
    return codes


def consume(device, raw_code: str) -> bool:
    """Mark an unused code of this set (``device.codes``) used; whether there was one. Call on the locked row
    (:mod:`devices.verification`)."""
    # Under every configured key: a set made before a key rotation keeps working, as the secrets do.
    candidates = [hash_code(raw_code, key) for key in _hash_keys()]
    row = device.codes.select_for_update().filter(code_hash__in=candidates, used_at=None).first()
    if row is None or not any(hmac.compare_digest(row.code_hash, candidate) for candidate in candidates):
        return False
    row.used_at = timezone.now()
    row.save(update_fields=["used_at"])
    return True
