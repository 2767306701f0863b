"""Rotating ``FACTOR_ENCRYPTION_KEYS``: every token re-encrypted under the first key.

What rotation reaches is :data:`devices.crypto.ENCRYPTED_FIELDS`, which each app fills when it is ready (here: app
secrets and queued message bodies; the vpn app: integration secrets and RADIUS shared secrets).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Model

from identity import audit
from identity.models import User

from .. import crypto

DEFAULT_BATCH_SIZE = 200


def _label(model: type[Model], name: str) -> str:
    # The model is enough (one encrypted field each, ``crypto.register_encrypted_field``), and keeps field names that
    # say "secret" out of the audit details.
    return model._meta.label


@dataclass
class Rotation:
    """What one run did, per model holding tokens (``app.Model``) and in all."""

    rotated: dict[str, int] = field(default_factory=dict)
    already_current: dict[str, int] = field(default_factory=dict)
    unreadable: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    completed: bool = False

    def totals(self) -> dict:
        return {
            "rotated": sum(self.rotated.values()),
            "already_current": sum(self.already_current.values()),
            "unreadable": sum(self.unreadable.values()),
            "batches": self.batches,
            "completed": self.completed,
        }


def count_not_under_first_key() -> dict[str, int]:
    """Per model holding tokens, how many stored tokens the first key does not read yet (reads only)."""
    counts = {}
    for model, name in crypto.ENCRYPTED_FIELDS:
        tokens = model.objects.exclude(**{name: ""}).values_list(name, flat=True).iterator(chunk_size=2000)
        counts[_label(model, name)] = sum(1 for token in tokens if not crypto.is_under_first_key(token))
    return counts


def _rotate_batch(model: Any, name: str, after_pk: int, size: int, result: Rotation) -> int | None:
    """Re-encrypt one batch of rows after ``after_pk`` under their row locks; return the last pk seen, or None."""
    label = _label(model, name)
    with transaction.atomic():
        # Locked and read in one statement, so a sign-in (which locks the device row to consume its code) or a
        # worker erasing a sent body either commits before this read or waits for this batch: no stale write-back.
        rows = list(
            model.objects.select_for_update()
            .filter(pk__gt=after_pk)
            .exclude(**{name: ""})
            .order_by("pk")
            .values_list("pk", name)[:size]
        )
        changed = []
        for pk, token in rows:
            if crypto.is_under_first_key(token):
                result.already_current[label] += 1
                continue
            try:
                changed.append(model(pk=pk, **{name: crypto.reencrypt(token)}))
            except crypto.InvalidToken:
                result.unreadable[label] += 1
        if changed:
            model.objects.bulk_update(changed, [name])
        result.rotated[label] += len(changed)
    return rows[-1][0] if rows else None


def rotate_encryption_keys(
    *,
    actor: User | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_batch: Callable[[Rotation], None] | None = None,
) -> Rotation:
    """Re-encrypt every factor secret and queued message body under the first of ``FACTOR_ENCRYPTION_KEYS``.

    Works in batches of ``batch_size`` rows, each in a transaction of its own holding those rows' locks, so sign-ins
    go on meanwhile. Resumable: a token the first key already reads is skipped, so a stopped run is simply run again.
    A token no configured key reads is counted as unreadable and left as it is. ``on_batch`` is called after each
    committed batch with the counts so far.

    Audits one ``encryption.keys_rotated`` event per run with the counts (no token, no key), also when the run is
    interrupted by an exception (``completed`` false), which is then raised again. Every process that reads these
    rows must already hold the new key before the run (docs/operations.md).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    result = Rotation()
    for model, name in crypto.ENCRYPTED_FIELDS:
        label = _label(model, name)
        for counts in (result.rotated, result.already_current, result.unreadable):
            counts[label] = 0
    try:
        for model, name in crypto.ENCRYPTED_FIELDS:
            after_pk = 0
            while (last_pk := _rotate_batch(model, name, after_pk, batch_size, result)) is not None:
                after_pk = last_pk
                result.batches += 1
                if on_batch is not None:
                    on_batch(result)
        result.completed = True
    finally:
        audit.record(
            "encryption.keys_rotated",
            actor=actor,
            details={**result.totals(), "rotated_by_model": result.rotated, "unreadable_by_model": result.unreadable},
        )
    return result
