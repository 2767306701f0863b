"""A campaign's reminder for 100,000 people: the time to queue it, the memory it takes, and sign-in codes sent meanwhile.

Three measurements, in one run:

1. **Queue.** A campaign of N people (made beforehand, not timed), none enrolled; a child process runs the reminder's
   batches one after the other as the worker's chain does (``campaigns.reminders.queue_reminder_batch``: lock the
   members' rows, raise their step, write the emails to the outbox, publish their send tasks to Redis), with the
   outbox's backlog limit lifted so nothing waits. It reports the wall time and its peak RSS. The same child with a
   cohort a tenth the size gives the baseline: memory that grew with the cohort would show as the difference.
2. **Codes first.** With the N reminders waiting in the ``bulk-email`` queue, one worker consuming every queue (the
   development layout, the least favourable: one pool for all) and a slow mail server (``--mail-ms`` a message),
   sign-in codes are queued one at a time, as a person asks for one, and each one's time from queued to sent is read
   from its row. The baseline is the same with no reminders waiting. Production runs a worker per queue
   (``deploy/enrollment-worker@.service``), which keeps the reminders further away still.

    DATABASE_URL=postgres://... REDIS_URL=redis://.../N python bench/campaign.py [--people 100000] [--rounds 3]

The Redis database is emptied of Celery's keys, and the database's people, campaigns and outbox rows are deleted:
give the benchmark a database and a Redis database of their own.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"
os.environ.setdefault("REMINDER_BACKLOG", "100000000")  # nothing waits: the whole cohort goes into the outbox

import django  # noqa: E402

django.setup()

import redis  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from campaigns import reminders  # noqa: E402
from campaigns.models import Campaign, Member  # noqa: E402
from config.celery import app  # noqa: E402
from devices import outbox  # noqa: E402
from devices.models import OutboundMessage  # noqa: E402
from identity.models import User  # noqa: E402

CODES = 15


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mail-ms", type=int, default=20, help="the mail server's time per message in the worker")
    parser.add_argument(
        "--queue-only", action="store_true", help="only the queuing (time and peak RSS), not the codes meanwhile"
    )
    parser.add_argument(
        "--threshold-too",
        action="store_true",
        help="also queue each cohort with psycopg's prepare_threshold set on the whole connection (what the settings "
        "did before), to show the memory that kept",
    )
    parser.add_argument("--phase", choices=["queue"], help=argparse.SUPPRESS)
    parser.add_argument("--campaign", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--connection-threshold", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def empty() -> None:
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE campaigns_nudge, campaigns_member, campaigns_cohortentry, campaigns_campaign CASCADE")
        cursor.execute("TRUNCATE devices_phoneverification, devices_outboundmessage CASCADE")
        # The benchmark's people have nothing else pointing at them: one statement, not the ORM's cascade collection.
        cursor.execute("DELETE FROM identity_user WHERE username LIKE 'bench-%%'")
    redis.Redis.from_url(app.conf.broker_url).flushdb()


def make_cohort(people: int) -> Campaign:
    """A running campaign whose welcome is due, with ``people`` members not enrolled (rows written in bulk)."""
    now = timezone.now()
    campaign = Campaign.objects.create(
        name=f"bench {people}",
        cohort=Campaign.Cohort.EVERYONE,
        starts_at=now - timedelta(hours=1),
        deadline=now + timedelta(days=30),
        quiet_from="00:00",
        quiet_until="00:00",
        email_subject="Set up two-step sign-in",
        email_text="Please set up two-step sign-in by {deadline}: {address}",
    )
    for start in range(0, people, 10_000):
        batch = User.objects.bulk_create(
            [
                User(username=f"bench-{people}-{n}", email=f"bench-{n}@example.edu", password="!", first_name="B")
                for n in range(start, min(start + 10_000, people))
            ]
        )
        Member.objects.bulk_create([Member(campaign=campaign, person=user, added_at=now) for user in batch])
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    return campaign


def peak_rss_kib() -> int:
    """This process's own peak RSS (``VmHWM``). Not ``ru_maxrss``: Linux carries that across ``exec`` from the
    process that started this one, here the benchmark's parent, which has just written the whole cohort."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def queue_phase(campaign_id: int, connection_threshold: bool) -> None:
    """In a child process: every batch of the welcome, one after the other; print seconds and peak RSS (KiB).

    ``connection_threshold``: psycopg's ``prepare_threshold`` set on the whole connection, as the settings did before
    identity.sql set it around its own statements only; psycopg then keeps the text of the last 100 statements."""
    if connection_threshold:
        connection.ensure_connection()
        connection.connection.prepare_threshold = 2**31 - 1
    started = time.perf_counter()
    after, queued = 0, 0
    while True:
        batch = reminders.queue_reminder_batch(campaign_id, after_person_id=after)
        queued += batch.queued
        if batch.last_person_id is None:
            break
        after = batch.last_person_id
    seconds = time.perf_counter() - started
    print(json.dumps({"queued": queued, "seconds": seconds, "peak_rss_kib": peak_rss_kib()}))


def run_queue(people: int, *, connection_threshold: bool = False) -> dict:
    empty()
    campaign = make_cohort(people)
    output = subprocess.run(
        [sys.executable, __file__, "--phase", "queue", "--campaign", str(campaign.pk)]
        + (["--connection-threshold"] if connection_threshold else []),
        check=True,
        capture_output=True,
        text=True,
        cwd=BASE_DIR,
    ).stdout
    result = json.loads(output.strip().splitlines()[-1])
    assert result["queued"] == people, result
    assert OutboundMessage.objects.filter(bulk=True, status=OutboundMessage.Status.QUEUED).count() == people
    assert redis.Redis.from_url(app.conf.broker_url).llen(settings.OUTBOX_QUEUES["bulk-email"]) == people
    return result


def start_worker(mail_ms: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "EMAIL_URL": "dummymail://",
        "BENCH_MAIL_MS": str(mail_ms),
        "PHONE_GATEWAY": "devices.gateways.OutboxOnlyGateway",
    }
    queues = ",".join(["celery", *settings.OUTBOX_QUEUES.values()])
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "bench.slow_mail",
            "worker",
            "--pool=prefork",
            "--concurrency=2",
            f"--queues={queues}",
            "--loglevel=WARNING",
            f"--hostname=bench-campaign-{os.getpid()}@localhost",
        ],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def code_latencies(mail_ms: int) -> list[float]:
    """Queue CODES sign-in codes one at a time with a worker running; seconds from queued to sent for each."""
    person, _ = User.objects.get_or_create(username="bench-signin", defaults={"email": "s@example.edu"})
    worker = start_worker(mail_ms)
    try:
        deadline = time.monotonic() + 60
        while not app.control.ping(timeout=0.5):
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not start")
        time.sleep(2)  # the worker is busy with whatever waits
        ids = []
        for n in range(CODES):
            with transaction.atomic():
                message = outbox.queue_phone_message(
                    user=person,
                    channel=OutboundMessage.Channel.SMS,
                    number=f"+161755501{n:02d}",
                    body=f"Your code is {100000 + n}",
                    template="phone_code",
                    expires_at=timezone.now() + timedelta(minutes=10),
                )
            ids.append(message.pk)
            time.sleep(0.5)
        rows = OutboundMessage.objects.filter(pk__in=ids)
        deadline = time.monotonic() + 120
        while rows.exclude(status=OutboundMessage.Status.SENT).exists():
            if time.monotonic() > deadline:
                raise RuntimeError("codes not sent within two minutes")
            time.sleep(0.1)
        return [(sent - created).total_seconds() for created, sent in rows.values_list("created_at", "sent_at")]
    finally:
        worker.terminate()
        worker.wait(timeout=60)


def summary(values: list[float]) -> str:
    return f"median {statistics.median(values):.3f} (range {min(values):.3f} to {max(values):.3f})"


def main():
    args = parse_args()
    if args.phase == "queue":
        queue_phase(args.campaign, args.connection_threshold)
        return
    if connection.vendor != "postgresql" or not settings.REDIS_URL:
        sys.exit("set DATABASE_URL=postgres://... and REDIS_URL=redis://... of the benchmark's own")
    if args.queue_only:
        queue_rounds(args)
        return
    rows = []
    for round_ in range(1, args.rounds + 1):
        small = run_queue(args.people // 10)
        large = run_queue(args.people)
        backlog = code_latencies(args.mail_ms)
        sent_reminders = OutboundMessage.objects.filter(bulk=True, status=OutboundMessage.Status.SENT).count()
        empty()
        quiet = code_latencies(args.mail_ms)
        row = {
            "round": round_,
            "people": args.people,
            "seconds": large["seconds"],
            "per_second": args.people / large["seconds"],
            "peak_rss_mib": large["peak_rss_kib"] / 1024,
            "baseline_peak_rss_mib": small["peak_rss_kib"] / 1024,
            "code_seconds_backlog": statistics.median(backlog),
            "code_seconds_quiet": statistics.median(quiet),
            "codes_backlog": backlog,
            "codes_quiet": quiet,
            "reminders_sent_meanwhile": sent_reminders,
        }
        rows.append(row)
        print(
            f"round {round_}: {args.people:,} queued in {row['seconds']:.1f} s ({row['per_second']:,.0f}/s), "
            f"peak RSS {row['peak_rss_mib']:.0f} MiB ({args.people // 10:,}: {row['baseline_peak_rss_mib']:.0f} "
            f"MiB); code queued to sent with the reminders waiting {summary(backlog)} s, without "
            f"{summary(quiet)} s; reminders sent meanwhile {sent_reminders}",
            flush=True,
        )
    print()
    print(
        "| round | queued | seconds | people/s | peak RSS MiB | peak RSS MiB, a tenth | code s, backlog | code s, none |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {row['round']} | {row['people']:,} | {row['seconds']:.1f} | {row['per_second']:,.0f} | "
            f"{row['peak_rss_mib']:.0f} | {row['baseline_peak_rss_mib']:.0f} | {row['code_seconds_backlog']:.3f} | "
            f"{row['code_seconds_quiet']:.3f} |"
        )
    ratios = [row["code_seconds_backlog"] / row["code_seconds_quiet"] for row in rows]
    print(
        f"\ncode latency, backlog / none: median {statistics.median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f})"
    )


def queue_rounds(args) -> None:
    """Queuing only: a tenth of the cohort and the cohort, in turns, as now and (``--threshold-too``) with the
    connection-wide threshold; the peak RSS of each and the growth from the tenth to the whole."""
    variants = [False, True] if args.threshold_too else [False]
    growth: dict[bool, list[float]] = {variant: [] for variant in variants}
    print("| round | threshold | people | seconds | people/s | peak RSS MiB | a tenth: peak RSS MiB | growth MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for round_ in range(1, args.rounds + 1):
        for variant in variants if round_ % 2 else reversed(variants):
            small = run_queue(args.people // 10, connection_threshold=variant)
            large = run_queue(args.people, connection_threshold=variant)
            grown = (large["peak_rss_kib"] - small["peak_rss_kib"]) / 1024
            growth[variant].append(grown)
            print(
                f"| {round_} | {'connection' if variant else 'its statements only'} | {args.people:,} | "
                f"{large['seconds']:.1f} | {args.people / large['seconds']:,.0f} | {large['peak_rss_kib'] / 1024:.0f} "
                f"| {small['peak_rss_kib'] / 1024:.0f} | {grown:+.1f} |",
                flush=True,
            )
    for variant, values in growth.items():
        print(
            f"growth from {args.people // 10:,} to {args.people:,}, threshold on "
            f"{'the connection' if variant else 'its statements only'}: {summary(values)} MiB"
        )
    empty()


if __name__ == "__main__":
    main()
