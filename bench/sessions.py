"""Ending a person's sessions after a lost device, with N other people's sessions in the table.

``identity.open_sessions.end_sessions`` deletes the person's sessions with one indexed query: the session engine
``identity.session_store`` writes the person and the device on each row. The baseline, measured in the same round,
is what Django's own engine would allow: decoding every unexpired session row (signed blobs with no user column)
to find the person's.

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

from django.contrib.auth import SESSION_KEY  # noqa: E402
from django.utils import timezone  # noqa: E402
from django_otp import DEVICE_ID_SESSION_KEY  # noqa: E402

from identity.models import PersonSession as Session  # noqa: E402
from identity.open_sessions import end_sessions  # noqa: E402
from identity.session_store import SessionStore  # noqa: E402

PREFIX = "bench"


class Person:
    pk = 10**9  # no real person: only the session rows carry the id


def session_data(user_id: int) -> str:
    # What a signed-in, verified session holds here (see identity.session and django_otp).
    return SessionStore().encode(
        {
            "_auth_user_id": str(user_id),
            "_auth_user_backend": "identity.directory.backends.PasswordBackend",
            "_auth_user_hash": "f" * 64,
            "otp_device_id": f"devices.authenticatorappdevice/{user_id}",
            "second_factor_verified_at": time.time(),
            "_messages": "[]",
        }
    )


def row(key: str, user_id: int, expires) -> Session:
    # The columns the session engine writes from the data (identity.session_store).
    return Session(
        session_key=key,
        session_data=session_data(user_id),
        expire_date=expires,
        user_id=user_id,
        otp_device_id=f"devices.authenticatorappdevice/{user_id}",
    )


def fill(count: int) -> None:
    Session.objects.filter(session_key__startswith=PREFIX).delete()
    expires = timezone.now() + timedelta(hours=8)
    Session.objects.bulk_create((row(f"{PREFIX}{i:027d}", i, expires) for i in range(count)), batch_size=2000)


def the_persons_session() -> None:
    Session.objects.filter(session_key=f"{PREFIX}{'x' * 27}").delete()
    Session.objects.bulk_create([row(f"{PREFIX}{'x' * 27}", Person.pk, timezone.now() + timedelta(hours=8))])


def decode_every_row() -> float:
    """The baseline: find the person's sessions by decoding each unexpired row, then delete them."""
    the_persons_session()
    started = time.perf_counter()
    store, theirs = SessionStore(), []
    rows = Session.objects.filter(expire_date__gt=timezone.now())
    for key, data in rows.values_list("session_key", "session_data").iterator():
        decoded = store.decode(data)
        if decoded.get(SESSION_KEY) == str(Person.pk) and decoded.get(DEVICE_ID_SESSION_KEY):
            theirs.append(key)
    Session.objects.filter(session_key__in=theirs).delete()
    elapsed = time.perf_counter() - started
    assert len(theirs) == 1
    return elapsed


def report_lost() -> float:
    the_persons_session()
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
    decode_every_row(), report_lost()  # warm the caches once, untimed
    ratios, scans, reads = [], [], []
    try:
        for round_ in range(args.rounds):
            # Alternate which goes first, so a drift in the machine's load hits both alike.
            if round_ % 2:
                scan, read = report_lost(), decode_every_row()
            else:
                read, scan = decode_every_row(), report_lost()
            scans.append(scan)
            reads.append(read)
            ratios.append(read / scan)
            print(
                f"round {round_ + 1}: decoding every row {read * 1000:.0f} ms, end_sessions {scan * 1000:.2f} ms, "
                f"{read / scan:.0f}x"
            )
    finally:
        Session.objects.filter(session_key__startswith=PREFIX).delete()
    print(
        f"{args.sessions} sessions, {args.rounds} rounds: end_sessions median {statistics.median(scans) * 1000:.2f} ms "
        f"(range {min(scans) * 1000:.2f}-{max(scans) * 1000:.2f}), decoding every row median "
        f"{statistics.median(reads) * 1000:.0f} ms (range {min(reads) * 1000:.0f}-{max(reads) * 1000:.0f}); "
        f"baseline / end_sessions median {statistics.median(ratios):.0f} (range {min(ratios):.0f}-{max(ratios):.0f})"
    )


if __name__ == "__main__":
    main()
