"""The one writer of the audit log, and the check of its hash chain (AC-06, AC-08, AC-09)."""

import hashlib
import json
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from .models import AuditEvent

GENESIS_HASH = "0" * 64
# Any of these in a details key means someone is about to log a secret (OTP-09).
_FORBIDDEN_KEY_PARTS = ("secret", "token", "code", "password", "seed", "otp", "key")
_PG_CHAIN_LOCK = 0x41554449  # advisory lock id serializing appends to the chain


def _canonical(event: AuditEvent) -> str:
    return json.dumps(
        {
            "sequence": event.sequence,
            "created_at": event.created_at.isoformat(),
            "actor": event.actor_id,
            "subject": event.subject_id,
            "action": event.action,
            "details": event.details,
            "ip": event.ip,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )


def compute_hash(prev_hash: str, event: AuditEvent) -> str:
    return hashlib.sha256((prev_hash + _canonical(event)).encode()).hexdigest()


def _check_details(details: dict) -> None:
    for key in details:
        lowered = key.lower()
        if any(part in lowered for part in _FORBIDDEN_KEY_PARTS):
            raise ValueError(f"audit details may not carry {key!r}: secrets never enter the audit log")


def record(action: str, *, actor=None, subject=None, ip: str | None = None, details: dict | None = None) -> AuditEvent:
    """Append one event to the audit log and return it.

    Call it inside the transaction of the state change it describes, so the
    event and the change commit or roll back together. ``details`` must be
    JSON-serializable and must not hold secrets; keys that look like secrets
    raise ``ValueError``.
    """
    details = dict(details or {})
    _check_details(details)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_PG_CHAIN_LOCK])
        last = AuditEvent.objects.order_by("-sequence").only("sequence", "hash").first()
        event = AuditEvent(
            sequence=(last.sequence + 1) if last else 1,
            created_at=timezone.now(),
            actor=actor if getattr(actor, "pk", None) else None,
            subject=subject if getattr(subject, "pk", None) else None,
            action=action,
            details=details,
            ip=ip or None,
            prev_hash=last.hash if last else GENESIS_HASH,
        )
        event.hash = compute_hash(event.prev_hash, event)
        event.save(force_insert=True)
    return event


@dataclass(frozen=True)
class ChainProblem:
    sequence: int
    reason: str


def verify_chain(batch_size: int = 2000) -> ChainProblem | None:
    """Walk the whole log in order; return the first broken or missing row, or None."""
    expected_sequence = 1
    prev_hash = GENESIS_HASH
    for event in AuditEvent.objects.order_by("sequence").iterator(chunk_size=batch_size):
        if event.sequence != expected_sequence:
            return ChainProblem(expected_sequence, "missing (deleted) row")
        if event.prev_hash != prev_hash:
            return ChainProblem(event.sequence, "previous-hash link broken")
        if event.hash != compute_hash(prev_hash, event):
            return ChainProblem(event.sequence, "row content edited")
        prev_hash = event.hash
        expected_sequence += 1
    return None
