"""The help desk's admin at the size of a large institution: 1,000,000 people, 1,500,000 registrations and
2,000,000 audit events, seeded in bulk (INSERT ... SELECT over generate_series: no services, no Python rows).

Times the pages an agent uses on every call, server side (Django's test client in this process, the real
middleware, a real second-factor-verified session), against a baseline measured in the same run: the admin's
index page, which goes through the same middleware and session but reads no people. Reports p50 and p95 per page
and round, and the median and range of the p95 over the rounds.

    createdb enrollment_bench
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/enrollment_bench .venv/bin/python manage.py migrate
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/enrollment_bench .venv/bin/python bench/admin.py --seed
    DATABASE_URL=... .venv/bin/python bench/admin.py --rounds 5 --requests 60

``--seed`` empties the people, devices and audit tables of that database first (it must be a database of its own:
the audit rows it writes are not hash-chained).
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.signals import request_finished, request_started  # noqa: E402
from django.db import close_old_connections, connection  # noqa: E402
from django.test import Client  # noqa: E402
from django_otp import DEVICE_ID_SESSION_KEY  # noqa: E402

PEOPLE = 1_000_000
TABLETS = 500_000  # every other person also has a tablet: 1,500,000 registrations in all
EVENTS = 2_000_000
AGENT = "bench-agent"

FIRST = (  # noqa: SIM905  (a list literal is 30 lines)
    "James Mary Robert Patricia John Jennifer Michael Linda David Elizabeth William Barbara Richard Susan Joseph "
    "Jessica Thomas Sarah Charles Karen Wei Priya Mohammed Ana Kenji Fatima Olga Juan Aisha Chen"
).split()
LAST = (  # noqa: SIM905
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez Wilson "
    "Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark Ramirez Lewis "
    "Robinson Nguyen Patel Kim Chen Singh Okafor Kowalski Rossi Novak Haddad"
).split()


def _sql_array(words: list[str]) -> str:
    return "ARRAY[" + ",".join(f"'{w}'" for w in words) + "]"


def seed() -> None:
    """Fill the tables in bulk. Every 37th surname gets a number, so rare surnames exist too."""
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET enrollment.allow_audit_truncate = on")
        cursor.execute(
            "TRUNCATE identity_auditevent, devices_registration, helpdesk_casenote, helpdesk_approvalrequest, "
            "helpdesk_identitycheck, helpdesk_case, identity_user_groups, identity_user CASCADE"
        )
        cursor.execute(
            f"""
            INSERT INTO identity_user (id, password, is_superuser, username, first_name, last_name, email, is_staff,
                is_active, date_joined, department, vpn_access, second_factor_failures, locked_at,
                lost_last_factor_at)
            SELECT i, '!', false, 'A' || lpad(i::text, 7, '0'),
                ({_sql_array(FIRST)})[1 + i % {len(FIRST)}],
                ({_sql_array(LAST)})[1 + (i / 7) % {len(LAST)}] || CASE WHEN i % 37 = 0 THEN i::text ELSE '' END,
                'a' || lpad(i::text, 7, '0') || '@example.edu', false, true,
                now() - (i % 3650) * interval '1 day',
                CASE WHEN i % 20 = 0 THEN '' ELSE 'Department ' || (i % 300) END,
                CASE WHEN i % 10 = 0 THEN 'approved' ELSE 'none' END, 0,
                CASE WHEN i % 1000 = 0 THEN now() END, CASE WHEN i % 5000 = 0 THEN now() END
            FROM generate_series(1, {PEOPLE}) AS i
            """
        )
        cursor.execute(
            f"""
            INSERT INTO devices_registration (user_id, kind, platform, phone_number, label, status, created_at,
                updated_at, activated_at, retired_at)
            SELECT i, 'mobile', CASE WHEN i % 2 = 0 THEN 'iphone' ELSE 'android' END,
                '+1617' || (2000000 + i)::text, 'My phone',
                CASE WHEN i % 25 = 0 THEN 'retired' ELSE 'active' END,
                now() - (i % 900) * interval '1 day', now(), now() - (i % 900) * interval '1 day',
                CASE WHEN i % 25 = 0 THEN now() END
            FROM generate_series(1, {PEOPLE}) AS i
            UNION ALL
            SELECT 2 * i, 'tablet', 'iphone', '', 'Tablet', 'active', now() - (i % 500) * interval '1 day', now(),
                now() - (i % 500) * interval '1 day', NULL
            FROM generate_series(1, {TABLETS}) AS i
            """
        )
        cursor.execute(
            f"""
            INSERT INTO identity_auditevent (sequence, created_at, actor_id, subject_id, action, details, ip,
                prev_hash, hash)
            SELECT i, now() - ({EVENTS} - i) * interval '10 seconds', 1 + (i::bigint * 7919) % {PEOPLE},
                1 + (i::bigint * 7919) % {PEOPLE},
                (ARRAY['signin.password_ok', 'signin.second_factor_ok', 'device.bound', 'signin.second_factor_failed'])
                    [1 + i % 4],
                '{{"factor": "totp", "entry_point": "web"}}'::jsonb, '10.0.0.1', md5(i::text), md5((i + 1)::text)
            FROM generate_series(1, {EVENTS}) AS i
            """
        )
        cursor.execute("SELECT setval(pg_get_serial_sequence('identity_user', 'id'), %s)", [PEOPLE + 10])
        cursor.execute("ANALYZE identity_user; ANALYZE devices_registration; ANALYZE identity_auditevent")
    print(f"seeded in {time.perf_counter() - started:.0f} s")


def agent_client() -> Client:
    """A Help desk agent's session, verified with a second factor (a bypass-code device of its own)."""
    from django.contrib.auth.models import Group

    from devices.bypass_codes import issue_bypass_codes
    from identity.models import User

    agent, _ = User.objects.get_or_create(username=AGENT, defaults={"is_staff": True})
    issuer, _ = User.objects.get_or_create(username=AGENT + "-issuer", defaults={"is_staff": True})
    agent.groups.add(Group.objects.get(name="Help desk"))
    issue_bypass_codes(agent, actor=issuer, count=1, valid_minutes=60)
    device = agent.bypasscodedevice_set.filter(confirmed=True).latest("pk")
    client = Client()
    client.force_login(agent)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


# A surname only one person has: seed() numbers every 37th person's surname.
_RARE = next(i for i in range(500_000, PEOPLE) if i % 37 == 0)
RARE_SURNAME = f"{LAST[(_RARE // 7) % len(LAST)]}{_RARE}"

PAGES = {
    "baseline: admin index": "/admin/",
    "people list": "/admin/identity/user/",
    "people list, department filter": "/admin/identity/user/?department=Department+7",
    "search by ID": "/admin/identity/user/?q=A0512345",
    "search by surname (common)": "/admin/identity/user/?q=Garcia",
    "search by surname (rare)": f"/admin/identity/user/?q={RARE_SURNAME}",
    "search by first and last name": "/admin/identity/user/?q=Mary+Smi",
    "search by phone (617) 251-2345": "/admin/identity/user/?q=%28617%29+251-2345",
    "person page": "/admin/identity/user/512345/change/",
}


def measure(client: Client, url: str, requests: int) -> tuple[float, float, int]:
    for _ in range(3):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    executed = []
    with connection.execute_wrapper(
        lambda execute, sql, params, many, context: executed.append(sql) or execute(sql, params, many, context)
    ):
        client.get(url)
    times = []
    for _ in range(requests):
        start = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.95) - 1], len(executed)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=60)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("needs PostgreSQL: set DATABASE_URL")
    settings.ALLOWED_HOSTS = ["testserver"]
    # One connection for the whole run, as a server keeps it (CONN_MAX_AGE), and its queries stay countable.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    if args.seed:
        seed()
    client = agent_client()
    p95s: dict[str, list[float]] = {name: [] for name in PAGES}
    queries: dict[str, int] = {}
    for round_ in range(1, args.rounds + 1):
        for name, url in PAGES.items():
            p50, p95, queries[name] = measure(client, url, args.requests)
            p95s[name].append(p95)
            print(f"round {round_}  {name:34s} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  {queries[name]} queries")
    base = statistics.median(p95s["baseline: admin index"])
    print("\n| page | p95 median (ms) | p95 range (ms) | ratio to baseline | queries |")
    print("| --- | --- | --- | --- | --- |")
    for name, values in p95s.items():
        median = statistics.median(values)
        print(
            f"| {name} | {median:.1f} | {min(values):.1f} to {max(values):.1f} | {median / base:.2f} | {queries[name]} |"
        )


if __name__ == "__main__":
    main()
