"""The audit log's bulk append (the directory sync's joiners) against the writer it replaced, in the same run.

Each round appends the same events, 1,000 per transaction as ``identity.directory.people.create_people`` does, with:

- ``sql``: ``identity.audit.record_many`` as it is: one statement, ``identity_audit_append_many`` (migration 0012),
  PostgreSQL hashing each event with the function the one-by-one append calls;
- ``python``: the writer it replaced, kept here as the baseline: the chain's lock and head read from Python, every
  event hashed with ``compute_hash`` and the batch written with one ``COPY`` (three statements a batch);
- ``one_by_one`` (``--kinds ... one_by_one``): ``identity.audit.record`` per event.

The order of the kinds alternates from round to round, so a drift in the machine's load hits each. It prints each
kind's seconds per round, and the median and range over the rounds of each kind's ratio to ``python`` in the same
round; then checks the chain over every row it appended (``verify_chain``).

    DATABASE_URL=postgres://.../enrollment_bench python bench/audit_bulk.py [--events 10000] [--rounds 5]

The database is a migrated one of the benchmark's own: the audit log only grows, so the rows stay.
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

import psycopg  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from identity import audit  # noqa: E402
from identity.models import AuditEvent, User  # noqa: E402

BATCH = 1_000
CHAIN_LOCK = 1096107081  # the chain's advisory lock, as the functions of migrations 0008 and 0012 take it
COLUMNS = ("sequence", "created_at", "actor_id", "subject_id", "action", "details", "ip", "prev_hash", "hash")
COPY_SQL = f"COPY {AuditEvent._meta.db_table} ({', '.join(COLUMNS)}) FROM STDIN"  # noqa: S608 (our names)
LAST_SQL = f"SELECT sequence, hash FROM {AuditEvent._meta.db_table} ORDER BY sequence DESC LIMIT 1"  # noqa: S608


def python_record_many(events: list[tuple[str, dict]]) -> int:
    """The bulk append before migration 0012: hashed in Python, written with ``COPY`` (the baseline)."""
    rows = [
        audit._new_row(action, **{"actor": None, "subject": None, "ip": None, "details": None, **e})
        for action, e in events
    ]
    with connection.cursor() as django_cursor, psycopg.Cursor(django_cursor.connection) as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK])
        cursor.execute(LAST_SQL)
        last = cursor.fetchone()
        sequence, prev_hash = (last[0], last[1]) if last else (0, audit.GENESIS_HASH)
        with cursor.copy(COPY_SQL) as copy:
            for row in rows:
                sequence += 1
                row.sequence, row.prev_hash = sequence, prev_hash
                row.hash = audit.compute_hash(prev_hash, row)
                copy.write_row(
                    (sequence, row.created_at, row.actor_id, row.subject_id, row.action, json.dumps(row.details))
                    + (row.ip, prev_hash, row.hash)
                )
                prev_hash = row.hash
    return len(rows)


def one_by_one(events: list[tuple[str, dict]]) -> int:
    for action, event in events:
        audit.record(action, **event)
    return len(events)


WRITERS = {"sql": audit.record_many, "python": python_record_many, "one_by_one": one_by_one}


def joiner_events(people: list[int], run: int) -> list[tuple[str, dict]]:
    """``directory.person_created`` events shaped as the sync writes them."""
    return [
        (
            "directory.person_created",
            {
                "subject": SimpleNamespace(pk=pk),
                "details": {
                    "source": "ldap",
                    "run": run,
                    "values": {
                        "username": f"joiner{n:06d}",
                        "email": f"joiner{n}@example.edu",
                        "first_name": f"First{n}",
                        "last_name": f"Last{n}",
                        "department": f"Department {n % 40}",
                        "directory_mobile": "",
                    },
                },
            },
        )
        for n, pk in enumerate(people)
    ]


def timed(kind: str, events: list[tuple[str, dict]]) -> float:
    start = time.perf_counter()
    for first in range(0, len(events), BATCH):
        with transaction.atomic():
            WRITERS[kind](events[first : first + BATCH])
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--kinds", nargs="+", default=["python", "sql"], choices=list(WRITERS))
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("set DATABASE_URL=postgres://... (a database of the benchmark's own)")
    if "python" not in args.kinds:
        sys.exit("python is the baseline: keep it in --kinds")
    people = list(User.objects.order_by("pk").values_list("pk", flat=True)[: args.events])
    if not people:
        people = [User.objects.create(username="audit-bench").pk]
    people = (people * (args.events // len(people) + 1))[: args.events]
    first = (AuditEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0) + 1
    ratios: dict[str, list[float]] = {kind: [] for kind in args.kinds if kind != "python"}
    for round_number in range(1, args.rounds + 1):
        kinds = args.kinds if round_number % 2 else list(reversed(args.kinds))
        seconds = {kind: timed(kind, joiner_events(people, round_number)) for kind in kinds}
        for kind in args.kinds:
            print(
                f"{args.events}\tround {round_number}\t{kind}\t{seconds[kind]:.2f} s\t"
                f"{seconds[kind] / seconds['python']:.2f}x python",
                flush=True,
            )
            if kind in ratios:
                ratios[kind].append(seconds[kind] / seconds["python"])
    for kind, found in ratios.items():
        print(
            f"# {args.events} events: {kind} / python median {statistics.median(found):.2f}, "
            f"range {min(found):.2f} to {max(found):.2f} over {len(found)} rounds",
            flush=True,
        )
    problem = audit.verify_chain(first=first)
    print(f"# chain from #{first}: {'intact' if problem is None else problem}", flush=True)


if __name__ == "__main__":
    main()
