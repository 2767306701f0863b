"""The audit log report's hash-chain check, on a log of many events.

Seeds the log up to ``--events`` rows (``identity.audit.record_many``, 1,000 a transaction, as the directory sync's
joiners write them), then times, ``--rounds`` times each:

- ``full``: ``identity.audit.verify_chain`` over the whole log, what the page ran on every load before;
- ``page``: ``reports.selectors.audit_chain_status`` for the page's default range (the whole log), as the page runs it
  now: the first round with no verified head remembered (every row read), the others the rows after that head only;
- ``page_after_appends``: the same after ``--appends`` new events.

    DATABASE_URL=postgres://.../enrollment_bench python bench/audit_report.py [--events 200000] [--rounds 5]

Its own migrated database, as ``audit_bulk.py``'s: the seeded events stay for the next run.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from django.core.cache import cache  # noqa: E402
from django.db import transaction  # noqa: E402

from bench.audit_bulk import BATCH  # noqa: E402  (sets Django up)
from identity import audit  # noqa: E402
from identity.models import AuditEvent  # noqa: E402
from reports.selectors import VERIFIED_HEAD_KEY, AuditFilters, audit_chain_status  # noqa: E402


def seed(events: int) -> None:
    have = AuditEvent.objects.count()
    while have < events:
        n = min(BATCH, events - have)
        batch = [("signin.password_ok", {"details": {"entry_point": "web", "n": have + i}}) for i in range(n)]
        with transaction.atomic():
            audit.record_many(batch)
        have += n
        if have % 50_000 < BATCH:
            print(f"seeded {have}", flush=True)


def timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--appends", type=int, default=100)
    parser.add_argument("--kinds", nargs="+", default=["full", "page", "page_after_appends"])
    args = parser.parse_args()
    seed(args.events)
    print(f"{AuditEvent.objects.count()} events in the log")

    def page():
        return audit_chain_status(AuditFilters())

    def page_after_appends():
        with transaction.atomic():
            audit.record_many([("signin.password_ok", {}) for _ in range(args.appends)])
        return page()

    cache.delete(VERIFIED_HEAD_KEY)
    kinds = {"full": audit.verify_chain, "page": page, "page_after_appends": page_after_appends}
    for kind in args.kinds:
        times = []
        for _ in range(args.rounds):
            seconds, result = timed(kinds[kind])
            times.append(seconds)
        print(f"{kind}: median {statistics.median(times):.3f} s ({', '.join(f'{t:.3f}' for t in times)}); {result}")


if __name__ == "__main__":
    main()
