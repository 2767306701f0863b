"""Ending a person's sessions after a lost device: a scan of every unexpired session, against reading those rows.

``identity.open_sessions.end_sessions`` finds the person's sessions by decoding each unexpired row of the session
table (sessions are signed blobs with no user column). This measures what one report costs with N other people's
sessions in the table, as a ratio to the baseline of only reading the same rows (same query, no decoding), measured
in the same round.

    DATABASE_URL=postgres://.../enrollment_bench python bench/sessions.py [--sessions 20000] [--rounds 7]

It writes and then deletes session rows whose key starts with ``bench``: give it a database of its own.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.contrib.sessions.backends.db import SessionStore  # noqa: E402
from django.contrib.sessions.models import Session  # noqa: E402
from django.utils import timezone  # noqa: E402

from identity.open_sessions import end_sessions  # noqa: E402

PREFIX = "bench"


class Person:
    pk = 10**9  # no real person: only the session rows carry the id


def session_data(user_id: int) -> str:
    # What a signed-in, verified session holds here (see identity.session and django_otp).
    return SessionStore().encode(
        {
            "_auth_user_id": str(user_id),
            "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
            "_auth_user_hash": "f" * 64,
            "otp_device_id": f"devices.authenticatorappdevice/{user_id}",
            "second_factor_verified_at": time.time(),
            "_messages": "[]",
        }
    )


def fill(count: int) -> None:
    Session.objects.filter(session_key__startswith=PREFIX).delete()
    expires = timezone.now() + timedelta(hours=8)
    Session.objects.bulk_create(
        (
            Session(session_key=f"{PREFIX}{i:027d}", session_data=session_data(i), expire_date=expires)
            for i in range(count)
        ),
        batch_size=2000,
    )


def read_rows() -> float:
    started = time.perf_counter()
    rows = Session.objects.filter(expire_date__gt=timezone.now()).exclude(session_key="")
    for _ in rows.values_list("session_key", "session_data").iterator():
        pass
    return time.perf_counter() - started


def report_lost() -> float:
    Session.objects.update_or_create(
        session_key=f"{PREFIX}{'x' * 27}",
        defaults={"session_data": session_data(Person.pk), "expire_date": timezone.now() + timedelta(hours=8)},
    )
    started = time.perf_counter()
    ended = end_sessions(Person(), verified_with={f"devices.authenticatorappdevice/{Person.pk}"})
    elapsed = time.perf_counter() - started
    assert ended == 1, ended
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    fill(args.sessions)
    read_rows(), report_lost()  # warm the caches once, untimed
    ratios, scans, reads = [], [], []
    try:
        for round_ in range(args.rounds):
            # Alternate which goes first, so a drift in the machine's load hits both alike.
            if round_ % 2:
                scan, read = report_lost(), read_rows()
            else:
                read, scan = read_rows(), report_lost()
            scans.append(scan)
            reads.append(read)
            ratios.append(scan / read)
            print(
                f"round {round_ + 1}: read {read * 1000:.0f} ms, end_sessions {scan * 1000:.0f} ms, {scan / read:.2f}x"
            )
    finally:
        Session.objects.filter(session_key__startswith=PREFIX).delete()
    print(
        f"{args.sessions} sessions, {args.rounds} rounds: end_sessions median {statistics.median(scans) * 1000:.0f} ms "
        f"(range {min(scans) * 1000:.0f}-{max(scans) * 1000:.0f}), reading the rows median "
        f"{statistics.median(reads) * 1000:.0f} ms; ratio median {statistics.median(ratios):.2f} "
        f"(range {min(ratios):.2f}-{max(ratios):.2f})"
    )


if __name__ == "__main__":
    main()
