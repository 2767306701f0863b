"""The VPN gate's hot path: signed ``/auth/v2/auth`` passcode checks, and RADIUS Access-Requests.

One session, on one machine, with one load client design for every HTTP target:

1. seed ``--people`` approved people, each with an authenticator app (the real models, secrets encrypted), and
   an integration and a RADIUS client for 127.0.0.1;
2. serve this project with gunicorn (``--workers`` x ``--threads``, gthread; 4 x 1 unless told) on PostgreSQL;
3. ``--rounds`` x (correct codes for ``--duration`` s, wrong codes for ``--duration`` s) at ``--concurrency``
   connections with the closed-loop client below: asyncio + httpx as the anchors' ``loadtest.py``, each request a
   ``duo_client``-signed (v5) POST; correct = a distinct person with their current code (each person once per
   30 s step), wrong = a code that is not theirs; medians of the rounds;
4. with ``--anchors DIR`` (the bench anchors' folder, set up as its README says, scratch folders in the
   environment variables it names), the same rounds for its bare-WSGI floor (``limit/run_limit.sh wsgi-gthread``)
   and privacyIDEA 3.14 in its fastest configuration (cheap PIN hash, shared engine), in the same session;
5. RADIUS: ``manage.py run_radius_server`` as a process and Debian's ``radclient -p CONCURRENCY`` over a file of
   requests, in code-only mode (the VPN checked the password) and with ``password,code`` (Django's hasher).

    DATABASE_URL=postgres://.../enr_bench python bench/vpn.py [--people 20000] [--anchors DIR]

The database is migrated and its people, devices and audit log grow; give the benchmark a database of its own.
"""

import argparse
import asyncio
import base64
import email.utils
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

import logging  # noqa: E402

logging.getLogger("httpx").setLevel(logging.WARNING)

import httpx  # noqa: E402
import psycopg  # noqa: E402
import pyotp  # noqa: E402
from django.contrib.auth.hashers import make_password  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402
from duo_client.client import Client as DuoClient  # noqa: E402
from duo_client.client import sign  # noqa: E402

from bench.outbox import worker_cpu  # noqa: E402
from campaigns.models import Campaign, Member  # noqa: E402
from devices import crypto  # noqa: E402
from devices.models import AuthenticatorAppDevice  # noqa: E402
from identity.models import User  # noqa: E402
from vpn import services  # noqa: E402
from vpn.models import Integration, RadiusClient, SeenSignature  # noqa: E402

PREFIX = "vpnbench"
PASSWORD = "bench password 1"  # noqa: S105
RADIUS_BATCH = 200


# --- Seeding ---------------------------------------------------------------------------------------------


def seed(people: int) -> dict[str, bytes]:
    """``people`` approved people with a confirmed app each; returns username -> secret. Reuses earlier seeds."""
    existing = dict(
        AuthenticatorAppDevice.objects.filter(user__username__startswith=PREFIX).values_list(
            "user__username", "encrypted_secret"
        )
    )
    if len(existing) < people:
        password = make_password(PASSWORD)
        users = [
            User(username=f"{PREFIX}{n:06d}", password=password, vpn_access=User.VpnAccess.APPROVED)
            for n in range(len(existing), people)
        ]
        User.objects.bulk_create(users, batch_size=2000)
        created = User.objects.filter(username__in=[u.username for u in users])
        AuthenticatorAppDevice.objects.bulk_create(
            [
                AuthenticatorAppDevice(
                    user=user, name="Phone", confirmed=True, encrypted_secret=crypto.encrypt(os.urandom(20))
                )
                for user in created
            ],
            batch_size=2000,
        )
        return seed(people)
    return {name: crypto.decrypt(token) for name, token in sorted(existing.items())[:people]}


def reset_counters() -> None:
    """Between runs: no lockout or back-off left over from a wrong-code run, and no dead rows left behind.

    Only the rows a wrong-code run changed are written. Then the tables are vacuumed, as autovacuum would in
    production: a PostgreSQL with autovacuum off (as on the machine these numbers come from) otherwise keeps every
    old row version, and each run would be slower than the one before.
    """
    people = User.objects.filter(username__startswith=PREFIX)
    people.exclude(second_factor_failures=0, locked_at=None).update(second_factor_failures=0, locked_at=None)
    AuthenticatorAppDevice.objects.filter(user__username__startswith=PREFIX).exclude(
        throttling_failure_count=0, throttling_failure_timestamp=None
    ).update(throttling_failure_count=0, throttling_failure_timestamp=None)
    with connection.cursor() as cursor:
        for model in (User, AuthenticatorAppDevice, SeenSignature):
            cursor.execute(f"VACUUM ANALYZE {model._meta.db_table}")  # noqa: S608 (our table names)


def integration_and_secret() -> tuple[str, str]:
    Integration.objects.filter(name="bench").delete()
    integration, secret = services.create_integration(name="bench", actor=None)
    return integration.integration_key, secret


def radius_client_secret() -> str:
    RadiusClient.objects.filter(name="bench").delete()
    _, secret = services.create_radius_client(name="bench", network="127.0.0.1/32", actor=None)
    return secret


# --- The load client (the anchors' loadtest.py loop, with Duo's signature) --------------------------------


class Codes:
    """Correct: a person not used yet in this 30 s step, with the current code. Wrong: a code shifted by 500000."""

    def __init__(self, secrets_by_user: dict[str, bytes]):
        self.users = sorted(secrets_by_user)
        self.totp = {u: pyotp.TOTP(base64.b32encode(s).decode()) for u, s in secrets_by_user.items()}
        self.step, self.next, self.wrong_i = None, 0, 0

    def correct(self):
        now = time.time()
        step = int(now // 30)
        if step != self.step:
            self.step, self.next = step, 0
        if self.next >= len(self.users):
            return None, 30 - (now % 30) + 0.05
        user = self.users[self.next]
        self.next += 1
        return (user, self.totp[user].at(now)), 0

    def unknown(self):
        self.wrong_i += 1
        return f"{PREFIX}-nobody-{self.wrong_i}", "123456"

    def wrong(self):
        user = self.users[self.wrong_i % len(self.users)]
        self.wrong_i += 1
        return user, f"{(int(self.totp[user].now()) + 500000) % 1000000:06d}"


async def load(base: str, codes: Codes, *, mode: str, duration: float, concurrency: int, ikey: str, skey: str):
    latencies, counts = [], {"accept": 0, "reject": 0, "error": 0, "starve": 0}
    host = httpx.URL(base).host

    async def worker(client, deadline):
        while time.monotonic() < deadline:
            if mode == "correct":
                item, wait = codes.correct()
                if item is None:
                    counts["starve"] += 1
                    await asyncio.sleep(min(wait, max(0.0, deadline - time.monotonic())))
                    continue
            elif mode == "unknown":  # API-04: nobody by that name; the answer must cost about what a wrong code does
                item = codes.unknown()
            else:
                item = codes.wrong()
            body = DuoClient.canon_json({"factor": "passcode", "username": item[0], "passcode": item[1]})
            date = email.utils.formatdate()
            authorization = sign(ikey, skey, "POST", host, "/auth/v2/auth", date, 5, {}, body=body)
            headers = {"Authorization": authorization, "Date": date, "Content-Type": "application/json"}
            started = time.perf_counter()
            try:
                response = await client.post("/auth/v2/auth", content=body, headers=headers)
                elapsed = time.perf_counter() - started
                result = response.json()["response"]["result"]
                counts["accept" if result == "allow" else "reject"] += 1
                latencies.append(elapsed)
            except Exception:
                counts["error"] += 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        started = time.monotonic()
        await asyncio.gather(*(worker(client, started + duration) for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    q = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) >= 2 else [float("nan")] * 99
    return {
        "label": "ours",
        "mode": mode,
        "requests": len(latencies),
        "rps": round(len(latencies) / elapsed, 2),
        "p50_ms": round(q[49] * 1000, 2),
        "p90_ms": round(q[89] * 1000, 2),
        "p99_ms": round(q[98] * 1000, 2),
        **counts,
    }


# --- Running things --------------------------------------------------------------------------------------


def wait_for_http(url: str, seconds: float = 180) -> None:
    # A loaded machine takes a while to boot four workers, and their first answer (imports, a database connection)
    # may take seconds.
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=10)
            return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not answer")


def run_ours(
    args,
    codes: Codes,
    ikey: str,
    skey: str,
    *,
    label: str = "ours",
    app: str | None = None,
    env: dict | None = None,
    rounds: int | None = None,
    modes=("correct", "wrong", "unknown"),
    checkout: Path = BASE_DIR,
) -> list[dict]:
    base = f"http://127.0.0.1:{args.port}"
    env = {**os.environ, "DEBUG": "false", "ALLOWED_HOSTS": "127.0.0.1", "DB_CONN_MAX_AGE": "600", **(env or {})}
    env = {name: value for name, value in env.items() if value is not None}  # None: not in the server's environment
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", str(args.workers), "-k", "gthread", "--threads", str(args.threads)]
        + ["-b", f"127.0.0.1:{args.port}", "--log-level", "warning", app or args.app],
        cwd=checkout,
        env=env,
    )
    try:
        wait_for_http(base + "/auth/v2/ping")
        asyncio.run(load(base, codes, mode="wrong", duration=3, concurrency=args.concurrency, ikey=ikey, skey=skey))
        rows = []
        for _ in range(rounds or args.rounds):
            for mode in modes:
                reset_counters()
                cpu_before = worker_cpu(server.pid)
                row = asyncio.run(
                    load(
                        base,
                        codes,
                        mode=mode,
                        duration=args.duration,
                        concurrency=args.concurrency,
                        ikey=ikey,
                        skey=skey,
                    )
                )
                row["label"] = label
                # CPU of gunicorn's processes per answered request: steadier than time on a shared machine
                row["cpu_ms"] = round((worker_cpu(server.pid) - cpu_before) * 1000 / max(1, row["requests"]), 3)
                print(json.dumps(row), flush=True)
                rows.append(row)
        return rows
    finally:
        stop(server)


def stop(server: subprocess.Popen) -> None:
    """gunicorn's graceful stop, then a kill: on a loaded machine a worker may not finish within the wait."""
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(30)


def compare(args, codes: Codes, ikey: str, skey: str, sides: dict, modes=("correct",)) -> None:
    """Two servers of the Auth API in turns within each round (which goes first alternates), one run of each mode
    each: ``sides`` is label -> (WSGI entry or None for ``--app``, extra environment). Prints each round's ratios of
    the second side to the first, and their median and range."""
    rows = []
    first, second = list(sides)
    for n in range(args.rounds):
        for label in (first, second) if n % 2 == 0 else (second, first):
            app, env = sides[label]
            rows += run_ours(args, codes, ikey, skey, label=label, app=app, env=env(), rounds=1, modes=modes)
    for mode in modes:
        a_rows = [r for r in rows if r["label"] == first and r["mode"] == mode]
        b_rows = [r for r in rows if r["label"] == second and r["mode"] == mode]
        print(f"\n{mode} codes: {second} (b) against {first} (a)")
        print(
            "| round | a req/s | b req/s | b / a | a CPU ms/req | b CPU ms/req | b / a | a p50 | b p50 | a p99 | b p99 |"
        )
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        rates, cpus = [], []
        for n, (a, b) in enumerate(zip(a_rows, b_rows, strict=True), start=1):
            rates.append(b["rps"] / a["rps"])
            cpus.append(b["cpu_ms"] / a["cpu_ms"])
            print(
                f"| {n} | {a['rps']:.1f} | {b['rps']:.1f} | {rates[-1]:.3f} | {a['cpu_ms']:.3f} | {b['cpu_ms']:.3f} "
                f"| {cpus[-1]:.3f} | {a['p50_ms']:.1f} | {b['p50_ms']:.1f} | {a['p99_ms']:.1f} | {b['p99_ms']:.1f} |"
            )
        for name, ratios in (("throughput", rates), ("CPU per request", cpus)):
            print(
                f"{mode}, {name}, b / a: median {statistics.median(ratios):.3f}, "
                f"range {min(ratios):.3f} to {max(ratios):.3f} over {len(ratios)} rounds"
            )


def compare_metrics(args, codes: Codes, ikey: str, skey: str) -> None:
    """The Auth API with metrics counted (as in production: gunicorn's workers writing to a multiprocess directory)
    and with ``METRICS_ENABLED=false``."""
    with tempfile.TemporaryDirectory() as parent:
        sides = {
            # prometheus_client takes the variable's presence, even empty, for multiprocess mode
            "metrics off": (None, lambda: {"METRICS_ENABLED": "false", "PROMETHEUS_MULTIPROC_DIR": None}),
            # an empty directory for each server, as systemd's RuntimeDirectory= gives one
            "metrics on": (
                None,
                lambda: {"METRICS_ENABLED": "true", "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(dir=parent)},
            ),
        }
        compare(args, codes, ikey, skey, sides)
    print(f"one check's counting (a counter and a histogram, multiprocess mode): {counting_cost():.2f} µs")


def counting_cost(calls: int = 200_000) -> float:
    """Microseconds per ``metrics.vpn_check`` in a process of its own, in multiprocess mode as under gunicorn."""
    snippet = (
        "import time, timeit, django; django.setup(); from identity import metrics; "
        f"print(min(timeit.repeat(lambda: metrics.vpn_check('auth_api', 'allow', time.perf_counter()), "
        f"number={calls}, repeat=5)) / {calls} * 1e6)"
    )
    with tempfile.TemporaryDirectory() as directory:
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": directory, "METRICS_ENABLED": "true"}
        out = subprocess.run([sys.executable, "-c", snippet], cwd=BASE_DIR, env=env, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


COHORT_PREFIX = "vpncohort"


def seed_unenrolled(people: int) -> None:
    """``people`` approved people with no device at all: the ones the campaigns are for. Reuses earlier seeds."""
    have = User.objects.filter(username__startswith=COHORT_PREFIX).count()
    if have < people:
        password = make_password(PASSWORD)
        User.objects.bulk_create(
            [
                User(username=f"{COHORT_PREFIX}{n:06d}", password=password, vpn_access=User.VpnAccess.APPROVED)
                for n in range(have, people)
            ],
            batch_size=2000,
        )


def make_campaigns() -> list[int]:
    """Two campaigns for everyone (the enrolled bench people and the cohort), their member rows written: one that lets
    people not enrolled in with the password alone until its deadline, one that requires enrollment. Made once and
    kept; the sides of the comparison only open and close them, so both measure the same tables."""
    now = timezone.now()
    campaigns = []
    for name, policy in (
        ("bench: password alone until the deadline", Campaign.Policy.ALLOW_PASSWORD_ALONE),
        ("bench: enrollment required", Campaign.Policy.REQUIRE_ENROLLMENT),
    ):
        campaign, created = Campaign.objects.get_or_create(
            name=name,
            defaults={
                "cohort": Campaign.Cohort.EVERYONE,
                "starts_at": now - timedelta(days=1),
                "deadline": now + timedelta(days=365),
                "email_subject": "Set up two-step sign-in",
                "email_text": "Please set up two-step sign-in by {deadline}: {address}",
                "policy_before_deadline": policy,
            },
        )
        if created:
            people = User.objects.filter(is_active=True).values_list("pk", flat=True).iterator(chunk_size=5000)
            Member.objects.bulk_create(
                (Member(campaign=campaign, person_id=pk, added_at=now) for pk in people), batch_size=5000
            )
        campaigns.append(campaign.pk)
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {Member._meta.db_table}")  # noqa: S608 (our table name)
    return campaigns


def set_campaigns_open(campaigns: list[int], is_open: bool) -> None:
    Campaign.objects.filter(pk__in=campaigns).update(closed_at=None if is_open else timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {Campaign._meta.db_table}")  # noqa: S608 (our table name)


def compare_campaigns(args, codes: Codes, ikey: str, skey: str) -> None:
    """An enrolled person's passcode check with no campaign open and with two open for everyone (and
    ``--compare-campaigns`` people not enrolled in them), each round beside the bare-WSGI floor (``--anchors``), in
    turns whose order alternates. The same rows on both sides: the campaigns are closed ("no campaign") or open.
    Prints each round's ratios and their median and range."""
    seed_unenrolled(args.compare_campaigns)
    campaigns = make_campaigns()
    sides = {"no campaign": False, "campaigns open": True}
    rows = []
    for n in range(args.rounds):
        order = ["floor", *sides] if n % 2 == 0 else [*reversed(sides), "floor"]
        for label in order:
            if label == "floor":
                rows += run_anchor(args.anchors / "limit" / "run_limit.sh", label, {}, args, rounds=1)
                continue
            set_campaigns_open(campaigns, sides[label])
            rows += run_ours(args, codes, ikey, skey, label=label, rounds=1, modes=("correct", "wrong"))
    set_campaigns_open(campaigns, False)
    for mode in ("correct", "wrong"):
        by_label = {
            label: [r for r in rows if r["label"] == label and r["mode"] == mode] for label in ("floor", *sides)
        }
        print(f"\n{mode} codes, an enrolled person's check (req/s; ratios in the same round)")
        print("| round | floor | no campaign | campaigns open | none / floor | open / floor | open / none |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        ratios = {"none / floor": [], "open / floor": [], "open / none": []}
        for n, (floor, none, opened) in enumerate(zip(*by_label.values(), strict=True), start=1):
            ratios["none / floor"].append(none["rps"] / floor["rps"])
            ratios["open / floor"].append(opened["rps"] / floor["rps"])
            ratios["open / none"].append(opened["rps"] / none["rps"])
            print(
                f"| {n} | {floor['rps']:.1f} | {none['rps']:.1f} | {opened['rps']:.1f} | "
                + " | ".join(f"{values[-1]:.3f}" for values in ratios.values())
                + " |"
            )
        for name, values in ratios.items():
            print(
                f"{mode}, {name}: median {statistics.median(values):.3f}, range {min(values):.3f} to "
                f"{max(values):.3f} over {len(values)} rounds"
            )
        for label in ("no campaign", "campaigns open"):
            chosen = by_label[label]
            print(
                f"{mode}, {label}: p50 {statistics.median(r['p50_ms'] for r in chosen):.1f} ms, "
                f"p99 {statistics.median(r['p99_ms'] for r in chosen):.1f} ms, "
                f"CPU {statistics.median(r['cpu_ms'] for r in chosen):.3f} ms/request (medians)"
            )


def anchor_database(label: str) -> str:
    """The libpq connection string of the database an anchor measures (as its scripts find it)."""
    if "peer" in label:
        config = (Path(os.environ.get("PEER_DATA", "")) / "pi.cfg").read_text()
        uri = re.search(r"SQLALCHEMY_DATABASE_URI\s*=\s*'([^']+)'", config).group(1)
        return uri.replace("postgresql+psycopg2://", "postgresql://")
    e = os.environ.get
    return (
        f"host={e('PGHOST', '127.0.0.1')} port={e('PGPORT', '5432')} user={e('PGUSER', 'bench')} "
        f"password={e('PGPASSWORD', 'bench')} dbname={e('LIMIT_DB', 'limit_bench')}"
    )


def vacuum(conninfo: str) -> None:
    """VACUUM ANALYZE a whole database, as autovacuum would between runs (it is off on some machines)."""
    with psycopg.connect(conninfo, autocommit=True) as db:
        db.execute("VACUUM ANALYZE")


def run_anchor(script: Path, label: str, env: dict, args, rounds: int | None = None) -> list[dict]:
    """``rounds`` runs of an anchor's script, one round each, its database vacuumed before each (as ours)."""
    env = {**os.environ, **env, "ROUNDS": "1", "DURATION": str(args.duration)}
    env["CONCURRENCY"] = str(args.concurrency)
    rows = []
    for _ in range(rounds or args.rounds):
        vacuum(anchor_database(label))
        out = subprocess.run(
            ["bash", str(script), *([] if "peer" in label else ["wsgi-gthread"])],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        for line in out.stdout.splitlines():
            if line.startswith("{"):
                row = json.loads(line)
                row["label"] = label
                print(json.dumps(row), flush=True)
                rows.append(row)
    if not rows:
        print(f"{label}: no results\n{out.stderr[-2000:]}", file=sys.stderr)
    return rows


def radius_rate(args, codes: Codes, secret: str, *, mode: str, requests: int, skip: int = 0) -> dict:
    """Access-Requests per second through radclient at the same concurrency (each a distinct person, good code)."""
    port = args.port + 1
    env = {**os.environ, "RADIUS_PASSWORD_MODE": mode}
    server = subprocess.Popen(
        [sys.executable, "manage.py", "run_radius_server", "--settings", "config.settings_api"]
        + ["--host", "127.0.0.1", "--port", str(port)],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout.readline().strip() == "ready"
        reset_counters()
        # The HTTP runs start from the front; each RADIUS mode has people of its own (a code is accepted once).
        users = codes.users[-requests - skip : len(codes.users) - skip]
        totals, elapsed = {"accepted": 0, "rejected": 0, "lost": 0}, 0.0
        # Batches of a few hundred, each written with the codes of the moment, so no batch outlives its codes.
        for first in range(0, len(users), RADIUS_BATCH):
            now = time.time()
            with tempfile.NamedTemporaryFile("w", suffix=".radius", delete=False) as packets:
                for user in users[first : first + RADIUS_BATCH]:
                    code = codes.totp[user].at(now)
                    value = code if mode == "code_only" else f"{PASSWORD},{code}"
                    packets.write(f'User-Name = "{user}"\nUser-Password = "{value}"\nMessage-Authenticator = 0x00\n\n')
            started = time.perf_counter()
            result = subprocess.run(
                ["radclient", "-q", "-s", "-p", str(args.concurrency), "-t", "20", "-r", "1", "-f", packets.name]
                + [f"127.0.0.1:{port}", "auth", secret],
                capture_output=True,
                text=True,
                check=False,
            )
            elapsed += time.perf_counter() - started
            os.unlink(packets.name)
            for key, value in re.findall(r"(Accepted|Rejected|Lost)\s*:\s*(\d+)", result.stdout):
                totals[key.lower()] += int(value)
        return {"label": f"radius {mode}", "requests": len(users), **totals, "rps": round(len(users) / elapsed, 2)}
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)


def medians(rows: list[dict], label: str, mode: str) -> dict | None:
    chosen = [r for r in rows if r["label"] == label and r["mode"] == mode]
    if not chosen:
        return None
    return {key: statistics.median(r[key] for r in chosen) for key in ("rps", "p50_ms", "p99_ms")} | {
        "range": (min(r["rps"] for r in chosen), max(r["rps"] for r in chosen)),
        "runs": len(chosen),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--people", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    # One single-threaded process per connection: no two checks share a GIL (measured against 2 x 4, bench/README.md)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--port", type=int, default=5010)
    # The Auth API's own process, as deploy/enrollment-api.service serves it.
    parser.add_argument("--app", default="config.wsgi_api:application", help="the WSGI entry gunicorn serves")
    parser.add_argument("--anchors", type=Path, help="the bench anchors' folder (set up as its README says)")
    parser.add_argument("--radius-requests", type=int, default=2000)
    parser.add_argument("--radius-password-requests", type=int, default=40)
    parser.add_argument(
        "--before",
        type=Path,
        help="another checkout of this project (the code before a change, same migrations), served the same way on "
        "the same database in the same run, for correct and wrong codes, as 'before'",
    )
    parser.add_argument(
        "--settings-too",
        help="a settings module to serve this project with as well, as 'ours (SETTINGS)', e.g. "
        "bench.settings_no_health_check",
    )
    parser.add_argument(
        "--compare-metrics",
        action="store_true",
        help="only the Auth API's correct codes, with metrics and without (METRICS_ENABLED=false), in turns",
    )
    parser.add_argument(
        "--compare-apps",
        nargs=2,
        metavar=("A", "B"),
        help="only the Auth API's correct and wrong codes, served by WSGI entry A and by B, in turns",
    )
    parser.add_argument(
        "--compare-campaigns",
        type=int,
        metavar="PEOPLE",
        help="only an enrolled person's passcode check against the floor (--anchors), with no campaign and with "
        "campaigns open for everyone and PEOPLE people not enrolled, in turns",
    )
    args = parser.parse_args()

    if connection.vendor != "postgresql":
        raise SystemExit("set DATABASE_URL to a PostgreSQL database of the benchmark's own")
    call_command("migrate", verbosity=0)
    codes = Codes(seed(args.people))
    ikey, skey = integration_and_secret()
    radius_secret = radius_client_secret()
    if args.compare_metrics:
        compare_metrics(args, codes, ikey, skey)
        return
    if args.compare_campaigns is not None:
        if not args.anchors:
            raise SystemExit("--compare-campaigns needs --anchors (the floor is measured in the same run)")
        compare_campaigns(args, codes, ikey, skey)
        return
    if args.compare_apps:
        sides = {app: (app, dict) for app in args.compare_apps}
        compare(args, codes, ikey, skey, sides, modes=("correct", "wrong"))
        return

    rows = []
    # With a second target of ours (--before, --settings-too), the targets take turns, one round each, so that a
    # machine whose load changes during the session weighs on all of them alike.
    turns = args.rounds if args.before or args.settings_too else 1
    rounds = 1 if turns > 1 else None
    peer_env = {"PI_ENGINE_REGISTRY": "shared"}
    for _ in range(turns):
        if args.anchors:
            rows += run_anchor(args.anchors / "limit" / "run_limit.sh", "floor: bare WSGI", {}, args, rounds)
        if args.before:
            rows += run_ours(
                args, codes, ikey, skey, label="before", modes=("correct", "wrong"), checkout=args.before, rounds=rounds
            )
        rows += run_ours(args, codes, ikey, skey, rounds=rounds)
        if args.settings_too:
            rows += run_ours(
                args,
                codes,
                ikey,
                skey,
                label=f"ours ({args.settings_too})",
                env={"DJANGO_SETTINGS_MODULE": args.settings_too},
                modes=("correct", "wrong"),
                rounds=rounds,
            )
        if args.anchors:
            rows += run_anchor(
                args.anchors / "peer-privacyidea" / "run_bench.sh", "peer: privacyIDEA fastest", peer_env, args, rounds
            )
    radius = [
        radius_rate(args, codes, radius_secret, mode=mode, requests=requests, skip=skip)
        for mode, requests, skip in (
            ("code_only", args.radius_requests, 0),
            ("password", args.radius_password_requests, args.radius_requests),
        )
        if requests  # 0 skips that mode
    ]

    print("\n| target | case | req/s (median, range) | p50 ms | p99 ms |\n| --- | --- | --- | --- | --- |")
    table = {}
    ours_labels = ["before", "ours", f"ours ({args.settings_too})"]
    for label in (*ours_labels, "floor: bare WSGI", "peer: privacyIDEA fastest"):
        for mode in ("correct", "wrong", "unknown"):
            m = medians(rows, label, mode)
            if m:
                table[(label, mode)] = m
                low, high = m["range"]
                print(
                    f"| {label} | {mode} | {m['rps']:.1f} ({low:.1f}-{high:.1f}) | {m['p50_ms']:.1f} | {m['p99_ms']:.1f} |"
                )
    for mode in ("correct", "wrong"):
        for ours_label in ours_labels:
            ours = table.get((ours_label, mode))
            for label in ("floor: bare WSGI", "peer: privacyIDEA fastest", "before"):
                other = table.get((label, mode))
                if ours and other and label != ours_label:
                    print(f"{mode}: {ours_label} / {label} = {ours['rps'] / other['rps']:.2f}")
    for row in radius:
        print(json.dumps(row))
        ours = table.get(("ours", "correct"))
        if ours:
            print(
                f"{row['label']}: {row['rps']} req/s = {row['rps'] / ours['rps']:.2f} x the HTTP path (correct codes)"
            )


if __name__ == "__main__":
    main()
