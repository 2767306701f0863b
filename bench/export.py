"""The enrollment report's exports at the size of an institution: CSV against PostgreSQL's own COPY, and XLSX.

For each size (people; 1.5 registrations each) the benchmark seeds the database once with SQL (generate_series:
every person a mobile phone with a confirmed app device, every other one a tablet too, half of those tablets retired,
departments, VPN statuses, a tenth locked, activation and last-use times spread over two years), then runs rounds.
Each round runs, each in a fresh child process so that its peak RSS is its own:

- ``copy``: ``COPY (<the report's SELECT>) TO STDOUT WITH CSV`` through psycopg, every byte read and dropped;
- ``csv``: the app's export, ``reports.registry.csv_file`` (PostgreSQL formats the cells and streams them with
  ``COPY``, the rare cell that may hold a phone number masked in Python), every chunk dropped;
- ``python``: the export cell by cell in Python (what SQLite gets, and the audit and help-desk reports):
  ``reports.selectors.enrollment_rows`` (one query, server-side cursor) through ``reports.exports.csv_chunks``;
- ``xlsx``: the same rows through ``reports.exports.write_xlsx`` (XlsxWriter, constant_memory) into a temporary file.

It prints one line per child (seconds, peak RSS in MB, rows) and, per size, the median and range of the CSV/COPY
ratio over the rounds.

    DATABASE_URL=postgres://.../enrollment_bench python bench/export.py [--sizes 100000 1000000] [--rounds 3]

The database is the benchmark's own: it deletes and re-creates the people and devices it seeded (usernames bench...).
"""

import argparse
import json
import os
import resource
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

from django.db import connection  # noqa: E402

from reports import selectors  # noqa: E402
from reports.exports import csv_chunks, write_xlsx  # noqa: E402
from reports.registry import REPORTS, csv_file  # noqa: E402

SEED = """
DELETE FROM devices_registration WHERE user_id IN (SELECT id FROM identity_user WHERE username LIKE 'bench%%');
DELETE FROM devices_authenticatorappdevice WHERE user_id IN (SELECT id FROM identity_user WHERE username LIKE 'bench%%');
DELETE FROM identity_user WHERE username LIKE 'bench%%';
INSERT INTO identity_user (password, is_superuser, username, first_name, last_name, email, is_staff, is_active,
    date_joined, department, vpn_access, second_factor_failures, locked_at, locked_until, source, directory_id,
    directory_dn, directory_mobile, directory_external_id)
SELECT '!', false, 'bench' || lpad(n::text, 8, '0'), 'First' || n, 'Last' || n, 'bench' || n || '@example.edu',
    false, true, now() - interval '3 years', 'Department ' || (n %% 40),
    (ARRAY['none', 'requested', 'approved', 'approved', 'revoked'])[1 + n %% 5], 0,
    CASE WHEN n %% 10 = 0 THEN now() - interval '1 hour' END, NULL, 'local', '', '', '', ''
FROM generate_series(1, %(people)s) AS n;
CREATE TEMP TABLE bench_people AS SELECT id, row_number() OVER (ORDER BY id) AS n FROM identity_user
    WHERE username LIKE 'bench%%';
-- One app device per registration: the person's phone (everyone), a tablet (every other person).
INSERT INTO devices_authenticatorappdevice (name, confirmed, throttling_failure_count, encrypted_secret, last_t,
    user_id, created_at, last_used_at)
SELECT 'phone', true, 0, '', -1, id, now(), now() - (n %% 700) * interval '1 day' FROM bench_people
UNION ALL
SELECT 'tablet', n %% 4 <> 0, 0, '', -1, id, now(), NULL FROM bench_people WHERE n %% 2 = 0;
INSERT INTO devices_registration (kind, platform, phone_number, label, status, created_at, updated_at, user_id,
    app_device_id, activated_at, retired_at)
SELECT CASE d.name WHEN 'phone' THEN 'mobile' ELSE 'tablet' END, 'android', '', '',
    CASE WHEN d.confirmed THEN 'active' ELSE 'retired' END, now(), now(), d.user_id, d.id,
    now() - (p.n %% 730) * interval '1 day', CASE WHEN d.confirmed THEN NULL ELSE now() END
FROM devices_authenticatorappdevice d JOIN bench_people p ON p.id = d.user_id;
DROP TABLE bench_people;
"""


def seed(people: int) -> float:
    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM identity_user WHERE username LIKE 'bench%%'")
        if cursor.fetchone()[0] == people:
            return 0.0
        cursor.execute(SEED, {"people": people})
        cursor.execute("VACUUM ANALYZE identity_user")
        cursor.execute("VACUUM ANALYZE devices_registration")
        cursor.execute("VACUUM ANALYZE devices_authenticatorappdevice")
    return time.perf_counter() - start


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(kind: str) -> dict:
    """Run one export in this (fresh) process; return seconds, rows and the peak RSS."""
    filters = selectors.EnrollmentFilters()
    start = time.perf_counter()
    rows = 0
    if kind == "copy":
        import psycopg

        sql, params = selectors.enrollment_sql(filters)
        with connection.cursor() as cursor:
            statement = psycopg.ClientCursor(cursor.connection).mogrify(sql, params)
            with cursor.connection.cursor().copy(f"COPY ({statement}) TO STDOUT WITH CSV HEADER") as copy:
                for data in copy:
                    rows += bytes(data).count(b"\n")
        rows -= 1
    elif kind == "csv":
        for chunk in csv_file(REPORTS["enrollment"], filters):
            rows += chunk.count(b"\n")
        rows -= 1
    elif kind == "python":
        for chunk in csv_chunks(selectors.ENROLLMENT_COLUMNS, selectors.enrollment_rows(filters)):
            rows += chunk.count(b"\n")
        rows -= 1
    else:
        with tempfile.TemporaryFile() as target:
            rows = write_xlsx(target, selectors.ENROLLMENT_COLUMNS, selectors.enrollment_rows(filters), sheet_name="x")
    return {"kind": kind, "seconds": time.perf_counter() - start, "rows": rows, "peak_rss_mb": peak_rss_mb()}


def run_child(kind: str) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--child", kind], check=True, capture_output=True, text=True, env=os.environ
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--kinds", nargs="+", default=["copy", "csv", "xlsx"], choices=["copy", "csv", "python", "xlsx"]
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    if connection.vendor != "postgresql":
        sys.exit("set DATABASE_URL=postgres://... (a database of the benchmark's own)")
    for people in args.sizes:
        print(f"# {people} people: seeding took {seed(people):.1f} s", flush=True)
        ratios: dict[str, list[float]] = {"csv": [], "python": []}
        for round_number in range(1, args.rounds + 1):
            # Alternate which of COPY and the app's CSV goes first, so a drift in the machine's load hits both.
            kinds = args.kinds if round_number % 2 else list(reversed(args.kinds))
            results = {kind: run_child(kind) for kind in kinds}
            for kind in args.kinds:
                r = results[kind]
                ratio = f"\t{r['seconds'] / results['copy']['seconds']:.2f}x COPY" if "copy" in results else ""
                print(
                    f"{people}\tround {round_number}\t{kind}\t{r['seconds']:.2f} s\t"
                    f"{r['peak_rss_mb']:.0f} MB\t{r['rows']} rows{ratio}",
                    flush=True,
                )
            for kind, found in ratios.items():
                if "copy" in results and kind in results:
                    found.append(results[kind]["seconds"] / results["copy"]["seconds"])
        for kind, found in ratios.items():
            if found:
                print(
                    f"# {people} people: {kind} / COPY median {statistics.median(found):.2f}, "
                    f"range {min(found):.2f} to {max(found):.2f} over {len(found)} rounds",
                    flush=True,
                )


if __name__ == "__main__":
    main()
