"""The LDAP sync at the size of an institution, against ``ldapsearch`` dumping the same entries (the floor).

For each size a private slapd (the tests' own, ``identity/directory/tests/slapd.py``: LDAPS with a verified
certificate, 100 entries per page) is loaded with that many people, then each round runs, each in a fresh child
process so that its peak RSS is its own, on a fresh copy of the benchmark's database (``CREATE DATABASE ... TEMPLATE``):

- ``ldapsearch``: OpenLDAP's client dumping every person under the base with the same filter, attributes and paged
  results (``-E pr=100/noprompt``), its LDIF read and dropped: the floor for reading the entries;
- ``first``: the first full sync (everyone a joiner);
- ``second``: a second full sync with nothing changed (writes no row but its run's);
- ``changed``: after 1% of the entries got a new email and department in slapd, a full sync (those are movers);
- ``postgres``: no directory and no Python per person: PostgreSQL alone writes as many
  people as the first sync creates, with their ``directory.person_created`` audit events through the same append
  function, 1,000 per transaction as the sync does, every row made in SQL. The floor for writing them: what the
  first sync costs above it is the read and this project's Python.

It prints one line per child (seconds, peak RSS in MB, counts) and per size the median and range of each run's
ratio to ldapsearch over the rounds.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/enrollment_bench python bench/directory_sync.py \\
        [--sizes 50000 100000] [--rounds 3]

DATABASE_URL names a migrated database the benchmark copies for each round (its role must be allowed to create
databases); the copies are dropped after.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

from identity.directory.tests import slapd as tree  # noqa: E402

RUNS = ("first", "second", "changed", "postgres")


def peak_rss_mb() -> float:
    """This process's own peak RSS: VmHWM, which a new program starts afresh. Not getrusage's ru_maxrss: Linux carries
    that across exec from the process that started it, here the parent holding the whole test directory in memory,
    so it grew with the directory whatever the sync did."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(kind: str) -> dict:
    from identity.directory import sync

    if kind == "postgres":
        return postgres_alone(int(os.environ["BENCH_SIZE"]))
    start, cpu = time.perf_counter(), cpu_seconds(resource.RUSAGE_SELF)
    run = sync.sync_directory()
    seconds = time.perf_counter() - start
    return {
        "kind": kind,
        "seconds": seconds,
        "cpu": cpu_seconds(resource.RUSAGE_SELF) - cpu,
        "peak_rss_mb": peak_rss_mb(),
        "status": run.status,
        "read": run.read,
        **run.counts,
    }


def postgres_alone(size: int, batch: int = 1000) -> dict:
    """``size`` joiners and their audit events written by PostgreSQL alone, ``batch`` per transaction: each batch is
    one statement that inserts the people (names, email, department, IDs and an unusable password of the sync's
    lengths; every other column the model's default) and appends one ``directory.person_created`` event each through
    ``identity_audit_append_many``, with details and a canonical text of the sync's shape built in SQL. The chain
    these rows make is not the application's (their canonical texts are SQL's): the database is a throwaway copy."""
    from django.db import transaction

    from identity.models import User

    fields = [f for f in User._meta.concrete_fields if not f.primary_key]
    made = {
        "username": "'person' || lpad(g::text, 6, '0')",
        "first_name": "'Person'",
        "last_name": "'Number' || g",
        "email": "'person' || lpad(g::text, 6, '0') || '@example.edu'",
        "department": "'Medicine'",
        "source": "'ldap'",
        "directory_id": "md5(g::text)",
        "directory_dn": "'uid=person' || lpad(g::text, 6, '0') || ',ou=people,dc=example,dc=org'",
        "password": "'!' || md5(random()::text) || 'abcdefgh'",
    }
    defaults = User()
    values = [made.get(f.attname, "%s") for f in fields]
    params = [f.get_db_prep_save(getattr(defaults, f.attname), connection) for f in fields if f.attname not in made]
    columns = ", ".join(f.column for f in fields)
    details = (
        "jsonb_build_object('sync_run', 1, 'values', jsonb_build_object('first_name', first_name, 'last_name', "
        "last_name, 'email', email, 'department', department, 'directory_mobile', ''))"
    )
    statement = (
        f"WITH people AS (INSERT INTO {User._meta.db_table} ({columns}) SELECT {', '.join(values)} "  # noqa: S608
        "FROM generate_series(%s, %s) g RETURNING id, first_name, last_name, email, department), "
        f"events AS (SELECT id, now() AS at, {details} AS details FROM people) "
        "SELECT identity_audit_append_many(array_agg(at ORDER BY id), array_agg(NULL::bigint ORDER BY id), "
        "array_agg(id ORDER BY id), array_agg('directory.person_created'::varchar ORDER BY id), "
        "array_agg(details ORDER BY id), array_agg(NULL::inet ORDER BY id), "
        'array_agg(format(\'{"action":"directory.person_created","actor":null,"created_at":"%%s",'
        '"details":%%s,"ip":null,"sequence":\', at, details) ORDER BY id), '
        "array_agg(format(',\"subject\":%%s}', id) ORDER BY id)) FROM events"
    )
    start, cpu = time.perf_counter(), cpu_seconds(resource.RUSAGE_SELF)
    for first in range(1, size + 1, batch):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [*params, first, min(first + batch - 1, size)])
    seconds = time.perf_counter() - start
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM identity_user WHERE source = 'ldap'), "
            "(SELECT count(*) FROM identity_auditevent WHERE action = 'directory.person_created')"
        )
        written = cursor.fetchone()
    if written != (size, size):
        raise RuntimeError(f"PostgreSQL alone wrote {written[0]} people and {written[1]} events, not {size} each")
    return {
        "kind": "postgres",
        "seconds": seconds,
        "cpu": cpu_seconds(resource.RUSAGE_SELF) - cpu,
        "peak_rss_mb": peak_rss_mb(),
        "status": "applied",
        "read": 0,
        "created": size,
    }


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def ldap_env(server: tree.Slapd) -> dict:
    values = server.settings()
    return {
        "LDAP_SERVER_URIS": ",".join(values["LDAP_SERVER_URIS"]),
        "LDAP_BIND_DN": values["LDAP_BIND_DN"],
        "LDAP_BIND_PASSWORD": values["LDAP_BIND_PASSWORD"],
        "LDAP_USER_SEARCH_BASE": values["LDAP_USER_SEARCH_BASE"],
        "LDAP_CA_CERT_FILE": values["LDAP_CA_CERT_FILE"],
        "LDAP_PAGE_SIZE": str(values["LDAP_PAGE_SIZE"]),
    }


def ldapsearch(server: tree.Slapd) -> dict:
    from identity.directory.ldap_source import LDAPReader

    env = ldap_env(server)
    reader = LDAPReader(page_size=tree.SIZE_LIMIT, bases=[tree.PEOPLE])
    command = [
        "ldapsearch",
        "-LLL",
        "-x",
        "-H",
        server.ldaps_uri,
        "-D",
        env["LDAP_BIND_DN"],
        "-w",
        env["LDAP_BIND_PASSWORD"],
        "-b",
        tree.PEOPLE,
        "-E",
        f"pr={tree.SIZE_LIMIT}/noprompt",
        settings.LDAP_SYNC_FILTER,
        *reader._attributes(),
    ]
    start, cpu = time.perf_counter(), cpu_seconds(resource.RUSAGE_CHILDREN)
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, env={**os.environ, "LDAPTLS_CACERT": str(server.ca_file)}
    )
    entries = 0
    for line in process.stdout:
        entries += line.startswith(b"dn: ")
    if process.wait():
        raise RuntimeError("ldapsearch failed")
    seconds = time.perf_counter() - start
    return {
        "kind": "ldapsearch",
        "seconds": seconds,
        "cpu": cpu_seconds(resource.RUSAGE_CHILDREN) - cpu,
        "read": entries,
    }


def run_child(kind: str, env: dict) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, "--child", kind],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def copy_database(template: str, name: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')


def drop_database(name: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def change_one_percent(server: tree.Slapd, size: int, round_number: int) -> int:
    conn = server.connection()
    import ldap

    try:
        changed = 0
        for n in range(1, size + 1, 100):
            dn = f"uid=person{n:05d},{tree.PEOPLE}"
            conn.modify_s(
                dn,
                [
                    (ldap.MOD_REPLACE, "mail", [f"moved{round_number}.{n}@example.edu".encode()]),
                    (ldap.MOD_REPLACE, "departmentNumber", [f"Moved {round_number}".encode()]),
                ],
            )
            changed += 1
    finally:
        conn.unbind_s()
    return changed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, 100_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS), help="which syncs of each round")
    parser.add_argument("--child", choices=RUNS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if reason := tree.missing():
        sys.exit(f"the benchmark {reason}")
    if connection.vendor != "postgresql":
        sys.exit("set DATABASE_URL=postgres://... (a migrated database of the benchmark's own)")
    if args.child:
        print(json.dumps(child(args.child)))
        return
    database = settings.DATABASES["default"]
    template, copy = database["NAME"], f"{database['NAME']}_round"
    base_url = os.environ["DATABASE_URL"].rsplit("/", 1)[0]
    # From here on this process works from the server's maintenance database: a template must have no session.
    connection.close()
    settings.DATABASES["default"]["NAME"] = "postgres"
    for size in args.sizes:
        start = time.perf_counter()
        server = tree.Slapd(bulk=size, people=[]).start()
        print(f"# {size} entries: slapd loaded and started in {time.perf_counter() - start:.1f} s", flush=True)
        env = {
            **ldap_env(server),
            "DATABASE_URL": f"{base_url}/{copy}",
            "LDAP_SYNC_BASES": tree.PEOPLE,
            "BENCH_SIZE": str(size),
        }
        runs = [kind for kind in RUNS if kind in args.runs]
        ratios: dict[str, list[float]] = {kind: [] for kind in runs}
        rss: list[float] = []
        try:
            for round_number in range(1, args.rounds + 1):
                copy_database(template, copy)
                connection.close()
                floor = ldapsearch(server)
                results = {"ldapsearch": floor}
                for kind in runs:
                    if kind == "changed":
                        change_one_percent(server, size, round_number)
                    if kind == "postgres":  # on a database of its own: no people from the syncs before
                        copy_database(template, f"{copy}_pg")
                        connection.close()
                        results[kind] = run_child(kind, {**env, "DATABASE_URL": f"{base_url}/{copy}_pg"})
                        drop_database(f"{copy}_pg")
                    else:
                        results[kind] = run_child(kind, env)
                for kind, r in results.items():
                    counts = " ".join(
                        f"{name} {r[name]}" for name in ("read", "created", "updated", "unchanged") if name in r
                    )
                    memory = f"\t{r['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in r else ""
                    print(
                        f"{size}\tround {round_number}\t{kind}\t{r['seconds']:.2f} s\tCPU {r['cpu']:.2f} s{memory}"
                        f"\t{counts}",
                        flush=True,
                    )
                for kind in runs:
                    ratios[kind].append(results[kind]["seconds"] / floor["seconds"])
                    rss.append(results[kind]["peak_rss_mb"])
                drop_database(copy)
        finally:
            server.close()
            drop_database(copy)
        for kind in runs:
            values = ratios[kind]
            print(
                f"# {size} entries: {kind} / ldapsearch median {statistics.median(values):.2f}, "
                f"range {min(values):.2f} to {max(values):.2f} over {len(values)} rounds",
                flush=True,
            )
        print(f"# {size} entries: peak RSS {max(rss):.0f} MB", flush=True)


if __name__ == "__main__":
    main()
