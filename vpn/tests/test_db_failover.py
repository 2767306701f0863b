"""PostgreSQL failover under a running Auth API and site (docs/operations.md, "PostgreSQL: a streaming replica and a
failover manager"): a private primary and its synchronous streaming replica, each a PostgreSQL server of its own on a
free port, hold a restored copy of this test's database; a gunicorn ``config.wsgi_api`` and a gunicorn
``config.wsgi`` reach them through a multi-host ``DATABASE_URL`` with ``target_session_attrs=read-write``. The VPN's
checks and a sign-in work; the primary dies; while no server can write, every check fails closed; the replica is
promoted, and the same processes answer again without a restart. A code spent before the failover is refused after
it (the spent step was replicated before the VPN was told "allow"), a wrong code is refused throughout, the person
signed in on the site stays signed in, and the audit chain verifies on the promoted server against checkpoints taken
before the dump and just before the primary died."""

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duo_client
import httpx
import psycopg
import pytest
import requests
from django.conf import global_settings
from django.urls import reverse

from devices.models import AuthenticatorAppDevice
from identity import audit
from testsupport import REQUIRE_SERVICES, SIGN_IN, free_tcp_port, totp_for, wait_for, wrong_code
from vpn.tests.test_api_process import api_process
from vpn.tests.test_restore_drill import KEY, Site, _pg, _sign_in_on_the_web, _site_env, database, tools  # noqa: F401

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
SUPERUSER = "failover_admin"  # the private cluster's own superuser, as a failover manager has one; never the app's
NAME = "enrollment"
REPLICA_NAME = "db2"  # its application_name, which the primary's synchronous_standby_names names
# The beat task's body, run once where the app runs: the chain's head, signed, as the log line carries it.
EXPORT_CHECKPOINT = (
    "import json; from reports.tasks import export_audit_checkpoint; print(json.dumps(export_audit_checkpoint()))"
)
READY = "/readyz?exclude=outbox&exclude=directory"  # what the load balancer probes (docs/operations.md)


def _postgres_bindir() -> str | None:
    """The directory of the server's own programs (initdb, pg_ctl, pg_basebackup): Debian keeps them off PATH."""
    if shutil.which("pg_config"):
        bindir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True).stdout.strip()
        if Path(bindir, "initdb").exists():
            return bindir
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return str(Path(found[-1]).parent) if found else None


class Server:
    """One PostgreSQL server of the private cluster: its data directory, port and log. Its programs run as the
    ``postgres`` account when the tests run as root (initdb and postgres refuse root)."""

    def __init__(self, bindir: str, base: Path, name: str, run_as: str | None):
        self.bindir, self.data, self.log, self.run_as = bindir, base / name, base / f"{name}.log", run_as
        self.port = free_tcp_port()
        self.socket_dir = base

    def run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [f"{self.bindir}/{program}", *args],
            user=self.run_as,
            cwd=self.socket_dir,
            env={**os.environ, "HOME": str(self.socket_dir), "PGCONNECT_TIMEOUT": "5"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{program}: {done.stdout}{done.stderr}{self.read_log()}"

    def read_log(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def url(self, user: str = SUPERUSER, name: str = NAME) -> str:
        return f"postgres://{user}@127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def crash(self) -> None:
        """An immediate stop: no checkpoint, the connections cut, as when the machine's PostgreSQL dies."""
        self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def promote(self) -> None:
        self.run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "promote")

    def is_running(self) -> bool:
        return Path(self.data, "postmaster.pid").exists()

    def sql(self, statement: str, params: tuple = (), *, name: str = NAME):
        with psycopg.connect(self.url(name=name), autocommit=True) as db:
            cursor = db.execute(statement, params)
            return cursor.fetchall() if cursor.description else None


@pytest.fixture
def keys(settings):
    """The factor keys and password hashers the site's and the API's processes will read the data with."""
    settings.FACTOR_ENCRYPTION_KEYS = [KEY]
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS


@pytest.fixture
def web_person(keys, make_user, enroll):
    person = make_user("webuser")
    enroll(person)
    return person


@pytest.fixture
def cluster(tools, database, keys, integration, vpn_person, web_person, tmp_path):  # noqa: F811 (imported above)
    """A primary holding a restored dump of this test's database, taken once the VPN's integration and person are
    in, and a streaming replica made from it with pg_basebackup, which the primary waits for on every commit
    (synchronous replication, as the docs prescribe). Yields ``(primary, replica, checkpoints)``: the file holds the
    audit checkpoint exported just before the dump, as beat ships them out of the database."""
    bindir = _postgres_bindir()
    programs = ("initdb", "pg_ctl", "pg_basebackup", "pg_restore")
    missing = [program for program in programs if not bindir or not Path(bindir, program).exists()]
    if missing:
        reason = f"needs PostgreSQL's {', '.join(missing)} (pg_config --bindir, or /usr/lib/postgresql/*/bin)"
        if REQUIRE_SERVICES:
            pytest.fail(f"REQUIRE_SERVICES=1 but this test {reason}")
        pytest.skip(reason)
    run_as = "postgres" if os.geteuid() == 0 else None
    # A short path of its own: the servers' Unix sockets live here too, and a socket's path is limited to ~100 bytes.
    base = Path(tempfile.mkdtemp(prefix="pgfailover-"))
    if run_as:
        shutil.chown(base, run_as)
    primary = Server(bindir, base, "db1", run_as)
    replica = Server(bindir, base, "db2", run_as)
    try:
        checkpoints = tmp_path / "checkpoints.jsonl"
        checkpoints.write_text(json.dumps(audit.make_checkpoint().as_dict()) + "\n")
        dump = base / "enrollment.dump"
        _pg("pg_dump", database, "--format=custom", f"--file={dump}", database["name"])
        dump.chmod(0o644)  # pg_restore runs as the servers' account
        _build(primary, replica, database, dump)
        yield primary, replica, checkpoints
    finally:
        for server in (primary, replica):
            if server.is_running():
                server.crash()
        shutil.rmtree(base, ignore_errors=True)


def _build(primary: Server, replica: Server, database: dict, dump: Path) -> None:  # noqa: F811 (a plain dict here)
    primary.run("initdb", "-D", str(primary.data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C", "-N")
    with open(primary.data / "postgresql.conf", "a") as conf:
        conf.write(
            f"listen_addresses = '127.0.0.1'\nport = {primary.port}\nunix_socket_directories = '{primary.socket_dir}'\n"
            # Only the servers are killed here, never the machine: what they wrote stays in the OS's cache.
            "fsync = off\n"
        )
    primary.start()
    # The roles are the cluster's ("Database roles"): the same names as where the dump was taken.
    for role in {database["owner"], database["app"]}:
        primary.sql(f'CREATE ROLE "{role}" LOGIN', name="postgres")
    primary.sql(f'CREATE DATABASE {NAME} OWNER "{database["owner"]}"', name="postgres")
    primary.run(
        "pg_restore",
        "--exit-on-error",
        "--single-transaction",
        f"--dbname={primary.url(database['owner'])}",
        str(dump),
    )
    connection = f"host=127.0.0.1 port={primary.port} user={SUPERUSER} application_name={REPLICA_NAME}"
    replica.run("pg_basebackup", "-d", connection, "-D", str(replica.data), "-R", "-X", "stream", "-c", "fast", "-N")
    with open(replica.data / "postgresql.conf", "a") as conf:
        conf.write(f"port = {replica.port}\n")
    replica.start()
    # Synchronous from here on: set on the primary alone, so the promoted replica does not wait for a standby it
    # lacks (Patroni's synchronous_mode_strict: false).
    primary.sql(f"ALTER SYSTEM SET synchronous_standby_names = '{REPLICA_NAME}'", name="postgres")
    primary.sql("SELECT pg_reload_conf()", name="postgres")
    wait_for(
        lambda: primary.sql("SELECT sync_state FROM pg_stat_replication", name="postgres") == [("sync",)], timeout=60
    )


def _spent(server: Server, device) -> tuple[int, int]:
    """The device's last spent TOTP step and its failure count, as that server has them."""
    table = AuthenticatorAppDevice._meta.db_table
    ((last_t, failures),) = server.sql(
        f"SELECT last_t, throttling_failure_count FROM {table} WHERE id = %s", (device.pk,)
    )
    return last_t, failures


def _answer(vpn: duo_client.Auth, code: str) -> str:
    """The Auth API's result for a passcode, or ``error`` when it answered none (the VPN then refuses)."""
    try:
        return vpn.auth(factor="passcode", username="vpnuser", passcode=code)["result"]
    except (RuntimeError, OSError, ValueError) as error:  # duo_client's "stat: FAIL", no answer, not JSON
        return f"error: {error}"


def _ready(base: str) -> int:
    return httpx.get(base + READY, timeout=30).status_code


def _code_at(device, step: int) -> str:
    """The code of ``step``, waiting until it is within the ±1 step tolerance."""
    while int(time.time()) // 30 < step - 1:
        time.sleep(0.5)
    return totp_for(device).at(step * 30)


def _manage(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_api_07_the_auth_api_and_the_site_answer_again_after_a_postgresql_failover_without_a_restart(
    cluster,
    database,  # noqa: F811
    integration,
    vpn_person,
    web_person,
    tmp_path,
):
    primary, replica, checkpoints = cluster
    device = vpn_person.registrations.get().app_device
    enrolled_step = device.last_t  # as the dump has it
    my_devices = reverse("devices:my_devices")

    # Every member, the replica first: libpq skips a server that cannot write and a server that does not answer.
    members = f"127.0.0.1:{replica.port},127.0.0.1:{primary.port}"
    url = f"postgres://{database['app']}@{members}/{NAME}?target_session_attrs=read-write&connect_timeout=2"
    site = Site(_site_env(database, NAME, DATABASE_URL=url), tmp_path / "site.log")
    (tmp_path / "metrics").mkdir()
    try:
        with api_process(tmp_path / "metrics", DATABASE_URL=url, FACTOR_ENCRYPTION_KEYS=KEY) as base:
            vpn = duo_client.Auth(
                ikey=integration.integration_key,
                skey=integration.secret,
                host="127.0.0.1",
                port=int(base.rsplit(":", 1)[1]),
                ca_certs="HTTP",
            )
            assert _ready(base) == 200
            # On the primary: a wrong code is refused and a right one allowed; a person signs in on the site.
            wrong = wrong_code(device)
            assert _answer(vpn, wrong) == "deny"
            step = max(int(time.time()) // 30, enrolled_step + 1)
            spent = _code_at(device, step)
            time.sleep(1.1)  # past the back-off of that one failure, so the right code is checked, not throttled
            assert _answer(vpn, spent) == "allow"
            browser = requests.Session()
            answer = _sign_in_on_the_web(site, web_person, web_person.registrations.get().app_device, browser)
            assert answer.status_code == 302 and SIGN_IN not in answer.headers["Location"], answer.text[:2000]
            # The primary committed these only once the replica had them; checkpoint the chain's head as beat would.
            wait_for(lambda: _spent(replica, device) == (step, 0))
            exported = _manage(url, "shell", "-c", EXPORT_CHECKPOINT)
            assert exported.returncode == 0, exported.stderr
            with checkpoints.open("a") as lines:
                lines.write(exported.stdout.strip().splitlines()[-1] + "\n")

            primary.crash()
            # No server takes writes: every check fails closed, whatever the code; the site shows an error page,
            # not the sign-in page (the session is not lost, only out of reach); the probe tells the load balancer.
            for code in (wrong, spent, _code_at(device, step + 1)):
                assert _answer(vpn, code).startswith("error"), code
            assert browser.get(f"{site.url}{my_devices}", timeout=30, allow_redirects=False).status_code == 500
            assert _ready(base) == 503

            replica.promote()
            # The same processes, through the same DATABASE_URL, now on the promoted server.
            assert _ready(base) == 200
            assert _spent(replica, device) == (step, 0)  # nothing in between, so only the spent step can refuse it
            assert _answer(vpn, spent) == "deny"
            time.sleep(1.1)  # the back-off of that refusal
            assert _answer(vpn, _code_at(device, step + 1)) == "allow"
            assert _answer(vpn, wrong) == "deny"
            assert browser.get(f"{site.url}{my_devices}", timeout=30, allow_redirects=False).status_code == 200
    finally:
        site.stop()

    verified = _manage(replica.url(database["app"]), "verify_audit_log", "--checkpoints", str(checkpoints))
    assert verified.returncode == 0, verified.stderr
    assert "2 checkpoints matched" in verified.stdout, verified.stdout
    ((accepted,),) = replica.sql(
        "SELECT count(*) FROM identity_auditevent WHERE sequence > %s AND action = 'signin.second_factor_ok'",
        (json.loads(checkpoints.read_text().splitlines()[0])["sequence"],),
    )
    assert accepted == 3  # the VPN's allows, one before the failover and one after, and the site's sign-in
