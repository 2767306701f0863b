"""Outbox throughput: N outbox messages through a real Celery worker and Redis, against N no-op tasks.

Each round runs both sides the same way:

1. empty the broker's queue, then publish N tasks with ``.delay()`` from this process
   (no-op: ``bench.celery_tasks.noop``; outbox: ``devices.outbox.dispatch`` of N queued SMS rows
   written beforehand with ``bulk_create``, sent through the development gateway);
2. start a fresh ``celery worker`` (same command line for both sides) and time from the moment it
   takes the first task until the queue is empty and no task is left unacknowledged; with late
   acknowledgement a task is acknowledged only after it has run, so this is "all N done";
3. stop the worker. For the outbox side, check every row: ``sent``, one attempt, body erased.

The sides alternate which goes first from round to round, so a drift in the machine's load
hits both alike. The completion check reads two Redis keys every 20 ms: it costs the same on
both sides and nothing in PostgreSQL. Publishing is not timed: done while the worker runs, it
would compete with the worker for the same CPUs, and its rate would cap the no-op side.

Besides the time, each side reports the CPU its worker processes and the PostgreSQL backends
serving them used per message (from /proc, Linux), which moves less than the time when other
work shares the machine.

    DATABASE_URL=postgres://... REDIS_URL=redis://.../11 python bench/outbox.py [--messages 10000] [--rounds 3]

The Redis database is emptied of Celery's keys: give the benchmark one of its own.
"""

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"

import django  # noqa: E402

django.setup()

import redis  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.celery_tasks import noop  # noqa: E402
from config.celery import app  # noqa: E402
from devices import crypto, outbox  # noqa: E402
from devices.models import OutboundMessage  # noqa: E402

TEMPLATE = "bench"
# kombu's Redis transport: the queue is a list; a delivered but unacknowledged message sits in these two.
# Both sides publish to the texts' queue, where the outbox sends SMS.
QUEUE, UNACKED, UNACKED_INDEX = settings.OUTBOX_QUEUES["sms"], "unacked", "unacked_index"


@dataclass
class Side:
    seconds: float
    publish_seconds: float
    worker_cpu: float
    database_cpu: float


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=1, help="each round runs both sides once")
    parser.add_argument("--pool", default="prefork", help="worker pool (celery's default: prefork)")
    parser.add_argument(
        "--concurrency", type=int, default=os.cpu_count(), help="worker processes (celery's default: CPU count)"
    )
    parser.add_argument("--only", choices=["noop", "outbox"], help="run one side only (profiling)")
    return parser.parse_args()


def check_services():
    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        sys.exit("set DATABASE_URL=postgres://... (the worker and this process share the database)")
    if not settings.REDIS_URL:
        sys.exit("set REDIS_URL=redis://... (a database of its own: the benchmark empties Celery's keys in it)")


def worker_command(args, nodename):
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "--include=bench.celery_tasks",
        f"--pool={args.pool}",
        f"--concurrency={args.concurrency}",
        "--loglevel=WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        f"--hostname={nodename}",
    ]


def write_outbox_rows(n):
    OutboundMessage.objects.filter(template=TEMPLATE).delete()
    expires_at = timezone.now() + timedelta(hours=1)
    rows = [
        OutboundMessage(
            channel=OutboundMessage.Channel.SMS,
            recipient=f"+1617555{i % 10_000:04d}",
            template=TEMPLATE,
            encrypted_body=crypto.encrypt(f"Your code is {i % 1_000_000:06d}".encode()),
            holds_secret=True,
            expires_at=expires_at,
        )
        for i in range(n)
    ]
    ids = [row.pk for row in OutboundMessage.objects.bulk_create(rows, batch_size=1000)]
    # Fresh statistics and no dead rows from the previous round, whether or not autovacuum runs on this server.
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {OutboundMessage._meta.db_table}")
    return ids


def check_outbox_rows(n):
    rows = OutboundMessage.objects.filter(template=TEMPLATE)
    sent = rows.filter(status=OutboundMessage.Status.SENT, attempts=1, encrypted_body="").exclude(provider_id="")
    if sent.count() != n or rows.count() != n:
        raise SystemExit(f"outbox check failed: {sent.count()} of {rows.count()} rows sent once with the body erased")


def process_tree(pid):
    pids = [pid]
    for parent in pids:
        for children in Path(f"/proc/{parent}/task").glob("*/children"):
            pids.extend(int(child) for child in children.read_text().split())
    return pids


def cpu_seconds(pids) -> dict:
    """User + system CPU seconds of each process, from /proc (Linux)."""
    seconds = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return seconds


def database_backends():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return [pid for (pid,) in cursor.fetchall()]


def worker_cpu(worker_pid) -> float:
    """CPU used so far by the worker: its main process and its pool's."""
    return sum(cpu_seconds(process_tree(worker_pid)).values())


class DatabaseCpu:
    """CPU used by the PostgreSQL backends serving the worker.

    The worker reconnects now and then (CONN_MAX_AGE, CELERY_DB_REUSE_MAX) and a backend's CPU
    time goes with it: the backends are read every tenth of a second and the last reading of each counts.
    """

    def __init__(self):
        self.start = cpu_seconds(database_backends())
        self.last = dict(self.start)

    def read(self):
        self.last.update(cpu_seconds(database_backends()))

    def used(self) -> float:
        return sum(seconds - self.start.get(pid, 0) for pid, seconds in self.last.items())


def drained(broker) -> bool:
    with broker.pipeline(transaction=False) as pipe:
        pipe.llen(QUEUE).hlen(UNACKED)
        queued, unacked = pipe.execute()
    return queued == 0 and unacked == 0


def run_side(side, args, broker, log_dir):
    n = args.messages
    broker.delete(QUEUE, UNACKED, UNACKED_INDEX)
    if side == "outbox":
        ids = write_outbox_rows(n)

        def publish(message_id):
            outbox.dispatch(message_id, OutboundMessage.Channel.SMS)

    else:
        ids = range(n)

        def publish(number):
            noop.apply_async((number,), queue=QUEUE)

    started = time.perf_counter()
    for message_id in ids:
        publish(message_id)
    publish_seconds = time.perf_counter() - started
    if broker.llen(QUEUE) != n:
        raise SystemExit(f"expected {n} tasks in the queue, found {broker.llen(QUEUE)}")

    nodename = f"bench-{os.getpid()}-{side}@localhost"
    env = {**os.environ, "CELERY_TASK_ALWAYS_EAGER": "false", "PHONE_GATEWAY": "devices.gateways.OutboxOnlyGateway"}
    log_path = Path(log_dir) / f"worker-{side}.log"
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            worker_command(args, nodename), cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while broker.llen(QUEUE) == n:
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the worker did not start; see {log_path}")
            time.sleep(0.001)
        started = time.perf_counter()
        worker_cpu_before, database_cpu = worker_cpu(worker.pid), DatabaseCpu()
        # A message is popped from the list a moment before it is recorded as unacknowledged:
        # "drained" has to hold on two polls in a row.
        confirmations, polls = 0, 0
        while confirmations < 2:
            if worker.poll() is not None:
                raise SystemExit(f"the worker stopped; see {log_path}")
            if drained(broker):
                if confirmations == 0:
                    finished = time.perf_counter()
                    worker_cpu_used = worker_cpu(worker.pid) - worker_cpu_before
                    database_cpu.read()
                confirmations += 1
            else:
                confirmations = 0
            polls += 1
            if polls % 5 == 0:
                database_cpu.read()
            time.sleep(0.02)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    if side == "outbox":
        check_outbox_rows(n)
    return Side(finished - started, publish_seconds, worker_cpu_used, database_cpu.used())


def main():
    args = parse_args()
    check_services()
    app.conf.task_always_eager = False
    broker = redis.Redis.from_url(settings.REDIS_URL)
    n = args.messages
    print(
        f"{n} messages per side, worker --pool={args.pool} --concurrency={args.concurrency}, "
        f"{args.rounds} round(s), {os.cpu_count()} CPUs",
        flush=True,
    )
    rounds = []
    with tempfile.TemporaryDirectory(prefix="outbox-bench-") as log_dir:
        for round_number in range(1, args.rounds + 1):
            sides = ["noop", "outbox"] if round_number % 2 else ["outbox", "noop"]
            results = {}
            for side in [args.only] if args.only else sides:
                results[side] = result = run_side(side, args, broker, log_dir)
                print(
                    f"round {round_number} {side:>6}: {result.seconds:7.2f} s {n / result.seconds:6.0f} msg/s,"
                    f" CPU per message: worker {result.worker_cpu / n * 1000:.2f} ms,"
                    f" PostgreSQL {result.database_cpu / n * 1000:.2f} ms"
                    f"  (published beforehand in {result.publish_seconds:.1f} s; load average {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
            if len(results) == 2:
                rounds.append(results)
                print(
                    f"round {round_number} ratio outbox/no-op: {results['outbox'].seconds / results['noop'].seconds:.2f}"
                )
    OutboundMessage.objects.filter(template=TEMPLATE).delete()
    broker.delete(QUEUE, UNACKED, UNACKED_INDEX)
    if not rounds:
        return
    print(
        "\n| round | no-op s | no-op msg/s | outbox s | outbox msg/s | ratio | CPU ms/msg no-op | CPU ms/msg outbox |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    ratios = []
    for i, results in enumerate(rounds, 1):
        noop_side, outbox_side = results["noop"], results["outbox"]
        ratios.append(outbox_side.seconds / noop_side.seconds)
        cpu = {side: (r.worker_cpu + r.database_cpu) / n * 1000 for side, r in results.items()}
        print(
            f"| {i} | {noop_side.seconds:.2f} | {n / noop_side.seconds:.0f} | {outbox_side.seconds:.2f}"
            f" | {n / outbox_side.seconds:.0f} | {ratios[-1]:.2f} | {cpu['noop']:.2f} | {cpu['outbox']:.2f} |"
        )
    median = statistics.median(ratios)
    print(f"\nmedian ratio: {median:.2f} (target: at most 1.5) -> {'met' if median <= 1.5 else 'NOT met'}")


if __name__ == "__main__":
    main()
