"""The one writer of the audit log, and the check of its hash chain (AC-06, AC-08, AC-09)."""

import hashlib
import hmac
import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass
from types import SimpleNamespace

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import Field
from django.utils import timezone
from psycopg.types.json import Jsonb

from . import request_id, sql
from .events import EVENTS
from .models import AuditEvent

GENESIS_HASH = "0" * 64
REQUEST_ID_KEY = "request_id"
# Any of these in a details key means someone is about to log a secret (OTP-09).
_FORBIDDEN_KEY_PARTS = ("secret", "token", "code", "password", "seed", "otp", "key")


def _canonical_parts(row) -> tuple[str, str]:
    """What the hash covers, split around the sequence number: ``head + str(sequence) + tail``.

    From an event or anything with its attributes. The keys are sorted and ``sequence`` comes between ``ip`` and
    ``subject``, so PostgreSQL can put the number it assigns under the chain's lock in between (migration 0008).
    ``ensure_ascii`` (json's default) keeps the text ASCII, the same bytes in Python and in the database.
    """
    before = json.dumps(
        {
            "action": row.action,
            "actor": row.actor_id,
            "created_at": row.created_at.isoformat(),
            "details": row.details,
            "ip": row.ip,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return before[:-1] + ',"sequence":', ',"subject":' + json.dumps(row.subject_id, default=str) + "}"


def _canonical(row) -> str:
    head, tail = _canonical_parts(row)
    return f"{head}{row.sequence}{tail}"


def compute_hash(prev_hash: str, event) -> str:
    return hashlib.sha256((prev_hash + _canonical(event)).encode()).hexdigest()


def _check_details(details: dict) -> None:
    for key in details:
        if key in _ALLOWED_KEYS:
            continue
        lowered = key.lower()
        if any(part in lowered for part in _FORBIDDEN_KEY_PARTS):
            raise ValueError(f"audit details may not carry {key!r}: secrets never enter the audit log")
        if len(_ALLOWED_KEYS) < 1000:
            _ALLOWED_KEYS.add(key)


# Keys already found harmless: the same few keys come back with every event (the directory sync's joiners wrote a
# hundred thousand events with the same two), and the check costs more than a set lookup. Bounded, in case keys are
# ever made of data.
_ALLOWED_KEYS: set[str] = set()


# One append on PostgreSQL (migration 0008): the chain's lock, the last row, the hash and the insert.
APPEND_SQL = (
    "SELECT event_id, event_sequence, event_prev_hash, event_hash FROM identity_audit_append("
    "%(audit_created_at)s::timestamptz, %(audit_actor_id)s::bigint, %(audit_subject_id)s::bigint, "
    "%(audit_action)s::varchar, %(audit_details)s::jsonb, %(audit_ip)s::inet, %(audit_head)s::text, "
    "%(audit_tail)s::text)"
)


def _new_row(action: str, *, actor, subject, ip, details) -> SimpleNamespace:
    if action not in EVENTS:
        raise ValueError(f"audit action {action!r} has no words: add its sentence to identity.events.EVENTS")
    details = dict(details or {})
    _check_details(details)
    # The request, RADIUS request or task that wrote it, to follow it through the logs; written once, so hashed.
    if (current := request_id.get()) is not None:
        details.setdefault(REQUEST_ID_KEY, current)
    return SimpleNamespace(
        created_at=timezone.now(),
        actor_id=getattr(actor, "pk", None),
        subject_id=getattr(subject, "pk", None),
        action=action,
        details=details,
        ip=_as_database_prints(ip) if ip else None,
    )


def _as_database_prints(ip: str) -> str:
    """``ip`` written as PostgreSQL's inet prints it, which is what the hash is checked against when the row is read.

    Python and PostgreSQL agree on every address (lower case, the longest run of zeros compressed) but one that
    carries an IPv4 address in its last 32 bits: PostgreSQL prints those bits dotted (``::ffff:203.0.113.5``,
    ``::203.0.113.5``) where Python writes hex (``::ffff:cb00:7105``). Anything not an address is left as it is.
    """
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if address.version == 6 and not address.scope_id:
        packed = address.packed
        word5, word6 = packed[10:12], packed[12:14]
        if packed[:10] == bytes(10) and (word5 == b"\xff\xff" or (word5 == bytes(2) and word6 != bytes(2))):
            prefix = "::ffff:" if word5 == b"\xff\xff" else "::"
            return prefix + str(ipaddress.IPv4Address(packed[12:]))
    return str(address)


def _hex_spellings(ip: str | None) -> list[str]:
    """Other ways a caller could have written the IPv4-mapped (``::ffff:a.b.c.d``) or IPv4-compatible
    (``::a.b.c.d``) address PostgreSQL prints as ``ip``: the last 32 bits in hex, as Python writes them
    (``::ffff:c000:201``) and with their groups padded (``::ffff:c000:0201``), the zeros compressed or written out,
    in lower or upper case; and the dotted form in upper case. Empty for any other address."""
    if not ip:
        return []
    try:
        address = ipaddress.IPv6Address(ip)
    except ValueError:
        return []
    if "." not in ip or ip != _as_database_prints(ip):  # not an address PostgreSQL prints with its IPv4 part dotted
        return []
    packed = address.packed
    mapped = packed[10:12] == b"\xff\xff"
    high, low = int.from_bytes(packed[12:14]), int.from_bytes(packed[14:])
    tails = [f"{high:x}:{low:x}", f"{high:04x}:{low:04x}", ip.rsplit(":", 1)[1]]
    heads = ["::ffff:", "0:0:0:0:0:ffff:", "0000:0000:0000:0000:0000:ffff:"] if mapped else ["::", "0:0:0:0:0:0:"]
    if not mapped:
        heads.append("0000:" * 6)
    spellings = {head + tail for head in heads for tail in tails}
    spellings |= {spelling.upper() for spelling in spellings}
    spellings.discard(ip)
    return sorted(spellings)


def _hashed_with_hex_spelling(prev_hash: str, event) -> bool:
    """Whether ``event``'s hash is over another spelling of its own IPv4-mapped address, and otherwise its row.

    Before addresses were hashed as PostgreSQL prints them (:func:`_as_database_prints`), a row was hashed over the
    address as the caller wrote it (``identity.web.client_ip`` writes ``::ffff:c000:201``) while PostgreSQL stored
    the address and prints it dotted (``::ffff:192.0.2.1``). The log is append-only, so those rows stay as they are:
    their hash is accepted over a spelling of the very address stored, and over nothing else."""
    for spelling in _hex_spellings(event.ip):
        fields = {name: getattr(event, name) for name in _HASHED_FIELDS}
        if hmac.compare_digest(event.hash, compute_hash(prev_hash, SimpleNamespace(**{**fields, "ip": spelling}))):
            return True
    return False


_HASHED_FIELDS = ("action", "actor_id", "created_at", "details", "sequence", "subject_id")


def _append_params(row) -> dict:
    head, tail = _canonical_parts(row)
    return {
        "audit_created_at": row.created_at,
        "audit_actor_id": row.actor_id,
        "audit_subject_id": row.subject_id,
        "audit_action": row.action,
        "audit_details": Jsonb(row.details),  # what JSONField sends through psycopg
        "audit_ip": row.ip,
        "audit_head": head,
        "audit_tail": tail,
    }


def record(action: str, *, actor=None, subject=None, ip: str | None = None, details: dict | None = None) -> AuditEvent:
    """Append one event to the audit log and return it.

    Call it inside the transaction of the state change it describes, so the
    event and the change commit or roll back together (an error here fails
    that whole transaction: no savepoint). ``details`` must be
    JSON-serializable and must not hold secrets; keys that look like secrets
    raise ``ValueError``. The chain's lock is held from here to the commit.
    """
    db = connections[DEFAULT_DB_ALIAS]
    row = _new_row(action, actor=actor, subject=subject, ip=ip, details=details)
    if db.vendor == "postgresql":
        # One statement: in the caller's transaction, or a transaction of its own.
        row.id, row.sequence, row.prev_hash, row.hash = sql.execute(APPEND_SQL, _append_params(row), fetch="one")
    else:
        # Elsewhere (SQLite, one writer at a time) the last row is read, hashed here and inserted, in one transaction.
        with transaction.atomic(savepoint=False):
            last = sql.execute(_LAST_SQL, {}, fetch="one")
            row.sequence = last[0] + 1 if last else 1
            row.prev_hash = last[1] if last else GENESIS_HASH
            row.hash = compute_hash(row.prev_hash, row)
            (row.id,) = sql.execute(_INSERT_SQL, _insert_params(row, db), fetch="one")
    return AuditEvent.from_db(db.alias, _FIELDS, [getattr(row, name) for name in _FIELDS])


def record_many(events: Iterable[tuple[str, dict]]) -> int:
    """Append several events, in order, as :func:`record` appends each (the same rows, checks and chain); return
    how many. For a bulk change (the directory sync's joiners), in the caller's transaction.

    On PostgreSQL one statement, :data:`APPEND_MANY_SQL`: the function takes the chain's lock once (the lock
    :func:`record`'s function takes, held to the commit as there), reads the chain's head once and hashes every
    event with the hash function the one-by-one append calls, so PostgreSQL alone writes the chain there. Elsewhere
    (SQLite) each event goes through :func:`record`.
    """
    db = connections[DEFAULT_DB_ALIAS]
    events = list(events)
    if db.vendor != "postgresql":
        for action, event in events:
            record(action, **event)
        return len(events)
    rows = [
        _new_row(action, **{"actor": None, "subject": None, "ip": None, "details": None, **e}) for action, e in events
    ]
    if not rows:
        return 0
    parts = [_canonical_parts(row) for row in rows]
    params = {
        "audit_created_at": [row.created_at for row in rows],
        "audit_actor_id": [row.actor_id for row in rows],
        "audit_subject_id": [row.subject_id for row in rows],
        "audit_action": [row.action for row in rows],
        # Text cast to jsonb by PostgreSQL: the text Jsonb() sends for one event, json.dumps's.
        "audit_details": [json.dumps(row.details) for row in rows],
        "audit_ip": [row.ip for row in rows],
        "audit_head": [head for head, _ in parts],
        "audit_tail": [tail for _, tail in parts],
    }
    (count,) = sql.execute(APPEND_MANY_SQL, params, fetch="one")
    return count


# Many appends on PostgreSQL (migration 0012): parallel arrays, one element per event. Sent in binary (``%b``): a
# text array quotes every '"' of the JSON texts on the client, which cost more than the appends. The casts take
# whatever element type psycopg picked (small ints, or text for a list of None) to the function's.
APPEND_MANY_SQL = (
    "SELECT identity_audit_append_many("
    "%(audit_created_at)b::timestamptz[], %(audit_actor_id)b::bigint[], %(audit_subject_id)b::bigint[], "
    "%(audit_action)b::varchar[], %(audit_details)b::jsonb[], %(audit_ip)b::inet[], %(audit_head)b::text[], "
    "%(audit_tail)b::text[])"
)


_TABLE = AuditEvent._meta.db_table
_FIELDS = [field.attname for field in AuditEvent._meta.concrete_fields]
_COLUMNS = ("sequence", "created_at", "actor_id", "subject_id", "action", "details", "ip", "prev_hash", "hash")
_LAST_SQL = f"SELECT sequence, hash FROM {_TABLE} ORDER BY sequence DESC LIMIT 1"  # noqa: S608 (our table name)
_INSERT_SQL = (
    f"INSERT INTO {_TABLE} ({', '.join(_COLUMNS)}) "  # noqa: S608 (our table and column names)
    f"VALUES ({', '.join(f'%({c})s' for c in _COLUMNS)}) RETURNING id"
)


class AuditedRefusal(ValidationError):
    """A service's refusal whose writes stand: its audit event, and whatever the refusal spent (a WebAuthn challenge
    is single-use whether the answer passes or not), made in the service's own transaction before raising it.

    A caller that runs the service inside a transaction of its own must not roll them back: it catches the refusal
    inside that transaction, lets the transaction commit, and raises the refusal after it (the desk's runner, which
    otherwise keeps an action and its ``helpdesk.action`` event together). Any other caller reads it as the
    ``ValidationError`` it is.
    """


def _insert_params(row, db) -> dict:
    """The row's values as the model's fields would send them to SQLite."""
    values = {column: getattr(row, column) for column in _COLUMNS}
    for column in _COLUMNS:
        field = AuditEvent._meta.get_field(column.removesuffix("_id"))
        assert isinstance(field, Field)  # a column's own field, never a reverse relation
        values[column] = field.get_db_prep_save(values[column], db)
    return values


@dataclass(frozen=True)
class ChainProblem:
    sequence: int
    reason: str


@dataclass(frozen=True)
class Checkpoint:
    """The chain's head at one moment, signed, to be kept outside the database (AC-11).

    Whoever can rewrite the table can recompute every hash after the row they
    changed, or cut the tail off; a checkpoint kept elsewhere still names the
    hash row ``sequence`` had, so :func:`verify_chain` finds either.
    """

    sequence: int
    hash: str
    created_at: str
    signature: str

    def as_dict(self) -> dict:
        return {
            "sequence": self.sequence,
            "hash": self.hash,
            "created_at": self.created_at,
            "signature": self.signature,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Checkpoint":
        return cls(int(data["sequence"]), str(data["hash"]), str(data["created_at"]), str(data["signature"]))


def _checkpoint_signature(sequence: int, hash_: str, created_at: str) -> str:
    from django.conf import settings

    message = f"{sequence}:{hash_}:{created_at}".encode()
    return hmac.new(settings.AUDIT_CHECKPOINT_KEY.encode(), message, hashlib.sha256).hexdigest()


def make_checkpoint() -> Checkpoint | None:
    """Sign the chain's current head; None while the log is empty. Reads only."""
    head = AuditEvent.objects.order_by("-sequence").only("sequence", "hash").first()
    if head is None:
        return None
    created_at = timezone.now().isoformat()
    return Checkpoint(head.sequence, head.hash, created_at, _checkpoint_signature(head.sequence, head.hash, created_at))


def _check_checkpoints(checkpoints, last_sequence: int, hashes: dict[int, str]) -> ChainProblem | None:
    for checkpoint in sorted(checkpoints, key=lambda c: c.sequence):
        expected = _checkpoint_signature(checkpoint.sequence, checkpoint.hash, checkpoint.created_at)
        if not hmac.compare_digest(expected, checkpoint.signature):
            return ChainProblem(checkpoint.sequence, "checkpoint signature invalid: not one this system made")
        if checkpoint.sequence > last_sequence:
            return ChainProblem(
                last_sequence + 1,
                f"tail truncated: the log ends at #{last_sequence}, before checkpoint #{checkpoint.sequence}",
            )
        if hashes.get(checkpoint.sequence) != checkpoint.hash:
            return ChainProblem(checkpoint.sequence, "tail rewritten: the row no longer matches its checkpoint")
    return None


def verify_chain(
    batch_size: int = 2000, *, first: int | None = None, last: int | None = None, checkpoints=()
) -> ChainProblem | None:
    """Walk the log in order from ``first`` to ``last`` (the whole log by default); return the first problem or None.

    Names the first missing (deleted) row, broken link or edited row. Each of
    ``checkpoints`` (signed heads kept outside the database) must carry a valid
    signature and still match its row, so a tail that was cut off or rewritten
    with recomputed hashes is named too. Reads only.
    """
    first = max(first or 1, 1)
    events = AuditEvent.objects.order_by("sequence").filter(sequence__gte=first)
    if last is not None:
        events = events.filter(sequence__lte=last)
    if first == 1:
        prev_hash = GENESIS_HASH
    else:
        before = AuditEvent.objects.filter(sequence=first - 1).values_list("hash", flat=True).first()
        if before is None:
            return ChainProblem(first - 1, "missing (deleted) row")
        prev_hash = before
    wanted = {c.sequence for c in checkpoints}
    hashes: dict[int, str] = {}
    expected_sequence = first
    for event in events.iterator(chunk_size=batch_size):
        if event.sequence != expected_sequence:
            return ChainProblem(expected_sequence, "missing (deleted) row")
        if event.prev_hash != prev_hash:
            return ChainProblem(event.sequence, "previous-hash link broken")
        if event.hash != compute_hash(prev_hash, event) and not _hashed_with_hex_spelling(prev_hash, event):
            return ChainProblem(event.sequence, "row content edited")
        if event.sequence in wanted:
            hashes[event.sequence] = event.hash
        prev_hash = event.hash
        expected_sequence += 1
    in_range = [c for c in checkpoints if c.sequence >= first and (last is None or c.sequence <= last)]
    return _check_checkpoints(in_range, expected_sequence - 1, hashes)
