"""The directory: what a directory password changes for RADIUS password mode.

One session, on one machine:

1. start a private slapd (identity/directory/tests/slapd.py: its own config, CA and TLS certificate, the memberof
   and ppolicy overlays; passwords stored {SSHA} as slapd writes them) with the bench's directory people;
2. seed, in PostgreSQL, ``--requests x --rounds`` people of each kind, each approved for the VPN with an
   authenticator app: directory people (source ldap, the entry's entryUUID) and local people whose password is
   hashed with Django's default PBKDF2 at the project's iteration count;
3. serve ``manage.py run_radius_server`` (password mode, LDAPS to slapd with the certificate verified) and send
   ``password,code`` Access-Requests with Debian's ``radclient -p CONCURRENCY``, each request a distinct person with
   their current code, ``--rounds`` rounds per kind, alternating which kind goes first; requests per second, median
   and range;
4. in this process, one check at a time: the site's password check (identity.directory.backends.check_password)
   for the same two kinds, median milliseconds.

    DATABASE_URL=postgres://.../enr_bench python bench/directory.py [--requests 60] [--rounds 3]

The database is migrated and its people, devices and audit log grow; give the benchmark a database of its own.
"""

import argparse
import base64
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

import pyotp  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from devices import crypto  # noqa: E402
from devices.models import AuthenticatorAppDevice  # noqa: E402
from identity.directory.backends import check_password  # noqa: E402
from identity.directory.ldap_source import LDAPReader  # noqa: E402
from identity.directory.tests import slapd as tree  # noqa: E402
from identity.models import User  # noqa: E402
from vpn import services  # noqa: E402
from vpn.models import RadiusClient  # noqa: E402

LOCAL_PASSWORD = "bench local password 1"  # noqa: S105
KINDS = ("directory", "local PBKDF2")
BATCH = 20


def directory_env(server: tree.Slapd) -> dict[str, str]:
    values = server.settings()
    return {
        k: ",".join(v) if isinstance(v, list) else str(v).lower() if isinstance(v, bool) else str(v)
        for k, v in values.items()
    }


def seed(server: tree.Slapd, count: int) -> dict[str, dict[str, bytes]]:
    """``count`` people of each kind; returns kind -> {username: secret}. People of earlier runs are reused (the
    audit log keeps pointing at them); a directory person takes this run's entryUUID."""
    records = {r.institution_id: r for r in LDAPReader().records()}
    local_hash = make_password(LOCAL_PASSWORD)  # PBKDF2, the project's iteration count
    wanted = {
        "directory": [f"person{n:05d}" for n in range(1, count + 1)],
        "local PBKDF2": [f"benchlocal{n:05d}" for n in range(1, count + 1)],
    }
    secrets = {}
    for kind, usernames in wanted.items():
        existing = set(User.objects.filter(username__in=usernames).values_list("username", flat=True))
        User.objects.bulk_create(
            [
                User(username=name, password=local_hash, vpn_access=User.VpnAccess.APPROVED)
                for name in usernames
                if name not in existing
            ]
        )
        people = list(User.objects.filter(username__in=usernames))
        for person in people:
            if kind == "directory":
                record = records[person.username]
                person.source, person.directory_id, person.directory_dn = (
                    User.Source.LDAP,
                    record.directory_id,
                    record.dn,
                )
                person.password = "!"  # unusable: the directory checks it
        User.objects.bulk_update(people, ["source", "directory_id", "directory_dn", "password"])
        User.objects.filter(pk__in=[p.pk for p in people]).update(second_factor_failures=0, locked_at=None)
        with_device = set(AuthenticatorAppDevice.objects.filter(user__in=people).values_list("user_id", flat=True))
        AuthenticatorAppDevice.objects.bulk_create(
            [
                AuthenticatorAppDevice(
                    user=p, name="Phone", confirmed=True, encrypted_secret=crypto.encrypt(os.urandom(20))
                )
                for p in people
                if p.pk not in with_device
            ]
        )
        secrets[kind] = {
            d.user.username: crypto.decrypt(d.encrypted_secret)
            for d in AuthenticatorAppDevice.objects.filter(user__in=people)
            .select_related("user")
            .order_by("user__username")
        }
    return secrets


def radius_round(port: int, secret: str, users: dict[str, bytes], password_of, concurrency: int) -> dict:
    """Access-Requests through radclient, in batches small enough that a batch outlives none of its codes (20
    PBKDF2 checks take about 12 s here; a code is good for its 30 s step and the next)."""
    totals, elapsed = {"accepted": 0, "rejected": 0, "lost": 0}, 0.0
    items = list(users.items())
    for first in range(0, len(items), BATCH):
        now = time.time()
        with tempfile.NamedTemporaryFile("w", suffix=".radius", delete=False) as packets:
            for user, key in items[first : first + BATCH]:
                code = pyotp.TOTP(base64.b32encode(key).decode()).at(now)
                packets.write(
                    f'User-Name = "{user}"\nUser-Password = "{password_of(user)},{code}"\n'
                    "Message-Authenticator = 0x00\n\n"
                )
        started = time.perf_counter()
        result = subprocess.run(
            [
                "radclient",
                "-q",
                "-s",
                "-p",
                str(concurrency),
                "-t",
                "30",
                "-r",
                "1",
                "-f",
                packets.name,
                f"127.0.0.1:{port}",
                "auth",
                secret,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed += time.perf_counter() - started
        os.unlink(packets.name)
        for key, value in re.findall(r"(Accepted|Rejected|Lost)\s*:\s*(\d+)", result.stdout):
            totals[key.lower()] += int(value)
    return {"requests": len(users), **totals, "rps": len(users) / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=60, help="Access-Requests per kind and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=4, help="the RADIUS server's threads")
    parser.add_argument("--checks", type=int, default=30, help="in-process password checks per kind")
    parser.add_argument("--port", type=int, default=5030)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        raise SystemExit("set DATABASE_URL to a PostgreSQL database of the benchmark's own")
    call_command("migrate", verbosity=0)

    count = args.requests * args.rounds
    server = tree.Slapd(bulk=max(count, args.checks)).start()
    try:
        env = directory_env(server)
        for name, value in server.settings().items():
            setattr(settings, name, value)
        secrets = seed(server, count)
        RadiusClient.objects.filter(name="bench").delete()
        _, radius_secret = services.create_radius_client(name="bench", network="127.0.0.1/32", actor=None)
        passwords = {"directory": lambda _user: tree.PASSWORD, "local PBKDF2": lambda _user: LOCAL_PASSWORD}

        process = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "run_radius_server",
                "--settings",
                "config.settings_api",
                "--host",
                "127.0.0.1",
                "--port",
                str(args.port),
                "--workers",
                str(args.workers),
            ],
            cwd=BASE_DIR,
            env={**os.environ, **env, "RADIUS_PASSWORD_MODE": "password"},
            stdout=subprocess.PIPE,
            text=True,
        )
        results = {kind: [] for kind in KINDS}
        try:
            assert process.stdout.readline().strip() == "ready"
            for round_ in range(args.rounds):
                for kind in KINDS if round_ % 2 == 0 else reversed(KINDS):
                    users = dict(list(secrets[kind].items())[round_ * args.requests : (round_ + 1) * args.requests])
                    row = radius_round(args.port, radius_secret, users, passwords[kind], args.concurrency)
                    print(f"radius {kind} round {round_ + 1}: {row}", flush=True)
                    results[kind].append(row)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)

        # One check at a time in this process: the password check alone, without RADIUS or the code.
        latency = {}
        for kind, password in (("directory", tree.PASSWORD), ("local PBKDF2", LOCAL_PASSWORD)):
            users = list(secrets[kind])[: args.checks]
            times = []
            for user in users:
                started = time.perf_counter()
                assert check_password(user, password).user is not None, user
                times.append((time.perf_counter() - started) * 1000)
            latency[kind] = (statistics.median(times), min(times), max(times))
    finally:
        server.close()

    print(
        "\n| password | RADIUS password,code req/s (median, range) | accepted | one check in-process, ms (median, range) |"
    )
    print("| --- | --- | --- | --- |")
    for kind in KINDS:
        rates = [r["rps"] for r in results[kind]]
        accepted = sum(r.get("accepted", 0) for r in results[kind])
        sent = sum(r["requests"] for r in results[kind])
        median, low, high = latency[kind]
        print(
            f"| {kind} | {statistics.median(rates):.1f} ({min(rates):.1f}-{max(rates):.1f}) | {accepted}/{sent} "
            f"| {median:.1f} ({low:.1f}-{high:.1f}) |"
        )
    ratio = statistics.median(r["rps"] for r in results["directory"]) / statistics.median(
        r["rps"] for r in results["local PBKDF2"]
    )
    print(f"directory / local PBKDF2 = {ratio:.2f}")


if __name__ == "__main__":
    main()
