"""The outbox sweep while a channel's worker is away: tasks in the broker per queued row, and re-dispatch cost.

Two measurements, each repeated ``--runs`` times, against real PostgreSQL and Redis (no worker runs):

1. **Pile-up.** N texts are queued and dispatched as on commit; then the sweep runs every 30 s of the clock
   (``freezegun``; the settings' grace and doubling wait) for ``--hours`` with nothing consuming the texts' queue.
   Reported: tasks in the broker per row, with the marks of ``devices/outbox/waiting.py`` and without them (the
   rule before them: a row dispatched again whenever its doubling wait had passed).
2. **Re-dispatch cost.** N rows whose tasks were lost (an empty queue, the last dispatch an hour ago) are
   dispatched again by one ``redispatch_stale()``; reported per row, against the per-row loop it replaced (one
   UPDATE and one ``apply_async`` per row).

    DATABASE_URL=postgres://... REDIS_URL=redis://.../11 python bench/sweep.py [--rows 1100] [--runs 5]

The Redis database is emptied: give the benchmark one of its own.
"""

import argparse
import contextlib
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db.models import F  # noqa: E402
from django.utils import timezone  # noqa: E402
from freezegun import freeze_time  # noqa: E402

from bench.outbox import TEMPLATE, check_services, write_outbox_rows  # noqa: E402  (sets Django up)
from config.celery import app  # noqa: E402
from devices import outbox  # noqa: E402
from devices.models import OutboundMessage  # noqa: E402
from devices.outbox import waiting  # noqa: E402

QUEUE = settings.OUTBOX_QUEUES["sms"]


def pile_up(broker, rows: int, hours: float, marks: bool) -> float:
    broker.flushdb()
    ids = write_outbox_rows(rows)
    start = timezone.now()
    # No expiry (emails wait as long as it takes): an expired row is no longer dispatched, which would hide a pile-up.
    OutboundMessage.objects.filter(pk__in=ids).update(last_dispatched_at=start, expires_at=None)
    outbox.dispatch_batch([(pk, "sms", 0) for pk in ids])  # what the commits did
    unmarked = mock.patch.object(waiting, "still_waiting", lambda rows: set())
    with contextlib.nullcontext() if marks else unmarked:
        for sweep in range(1, int(hours * 3600 / 30) + 1):
            with freeze_time(start + timedelta(seconds=30 * sweep)):
                outbox.redispatch_stale()
    return broker.llen(QUEUE) / rows


def lost_rows(broker, rows: int) -> list[int]:
    broker.flushdb()
    ids = write_outbox_rows(rows)
    OutboundMessage.objects.filter(pk__in=ids).update(last_dispatched_at=timezone.now() - timedelta(hours=1))
    return ids


def redispatch_batched(broker, rows: int) -> float:
    lost_rows(broker, rows)
    started = time.perf_counter()
    count = outbox.redispatch_stale()
    seconds = time.perf_counter() - started
    assert count == rows == broker.llen(QUEUE), (count, broker.llen(QUEUE))
    return seconds / rows * 1000


def redispatch_per_row(broker, rows: int) -> float:
    ids = lost_rows(broker, rows)
    now = timezone.now()
    started = time.perf_counter()
    for pk in ids:  # the sweep's loop before batching
        OutboundMessage.objects.filter(pk=pk).update(
            last_dispatched_at=now, sweep_dispatches=F("sweep_dispatches") + 1, dispatch_failed_at=None
        )
        outbox.send_task.apply_async((pk,), queue=QUEUE)
    seconds = time.perf_counter() - started
    assert broker.llen(QUEUE) == rows
    return seconds / rows * 1000


def summary(values: list[float], unit: str) -> str:
    return f"median {statistics.median(values):.2f} {unit} (range {min(values):.2f} to {max(values):.2f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1100)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--hours", type=float, default=2.0, help="how long the worker is away in the pile-up")
    args = parser.parse_args()
    check_services()
    app.conf.task_always_eager = False
    broker = redis.Redis.from_url(settings.REDIS_URL)
    print(f"{args.rows} rows, {args.runs} runs, sweep every 30 s, grace {settings.OUTBOX_SWEEP_GRACE_SECONDS} s")
    results = {"marks 5 min": [], f"marks {args.hours:g} h": [], "no marks 5 min": [], f"no marks {args.hours:g} h": []}
    costs = {"batched": [], "per row": []}
    for run in range(1, args.runs + 1):
        for marks in (True, False):
            for hours in (5 / 60, args.hours):
                name = f"{'marks' if marks else 'no marks'} {'5 min' if hours < 1 / 6 else f'{args.hours:g} h'}"
                results[name].append(pile_up(broker, args.rows, hours, marks))
        costs["batched"].append(redispatch_batched(broker, args.rows))
        costs["per row"].append(redispatch_per_row(broker, args.rows))
        print(
            f"run {run}: tasks per row "
            + ", ".join(f"{name} {values[-1]:.2f}" for name, values in results.items())
            + f"; re-dispatch ms per row: batched {costs['batched'][-1]:.2f}, per row {costs['per row'][-1]:.2f}",
            flush=True,
        )
    for name, values in results.items():
        print(f"tasks per row, {name}: {summary(values, '')}")
    for name, values in costs.items():
        print(f"re-dispatch, {name}: {summary(values, 'ms per row')}")
    OutboundMessage.objects.filter(template=TEMPLATE).delete()
    broker.flushdb()


if __name__ == "__main__":
    main()
