"""The RADIUS command started as a process, asked by Debian's ``radclient`` (API-05, API-08, API-09, OTP-01,
API-04, API-07)."""

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection
from django.utils import timezone
from prometheus_client import REGISTRY

from campaigns import texts
from devices import crypto
from devices.models import OutboundMessage, PhoneDevice
from identity import audit
from identity import services as identity_services
from identity.models import AuditEvent, User
from testsupport import (
    PASSWORD,
    SECOND_FACTOR,
    SIGN_IN,
    CapturedStatements,
    details_of,
    fresh_code,
    owner_cursor,
    wait_for,
    wrong_code,
)
from vpn import services
from vpn.models import RadiusChallenge
from vpn.radius import server as server_module
from vpn.radius.server import DICTIONARY, PER_NAME, USER_NAME, ClientNetworks, RadiusProtocol, WorkQueue
from vpn.tests.faults import assert_failed_closed, checks_under_fault

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not shutil.which("radclient") and os.environ.get("REQUIRE_SERVICES") != "1",
        reason="needs Debian's radclient (freeradius-utils)",
    ),
]
ROOT = Path(__file__).resolve().parents[2]
RADIUS_WORKERS = 16  # the server's pool: requests answered at once


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def radius_client(db):
    client, secret = services.create_radius_client(name="ASA", network="127.0.0.1/32", actor=None)
    client.secret = secret
    return client


@pytest.fixture
def radius_log() -> list[str]:
    """The lines the RADIUS server process logs (its error stream), read as they come so its pipe never fills."""
    return []


@contextmanager
def radius_server_process(settings, log: list[str], extra_env: dict[str, str] | None = None):
    """``manage.py run_radius_server`` in its own process, on the test database; yields its port, appending the
    lines it logs (its error stream) to ``log`` as they come so its pipe never fills."""
    db = connection.settings_dict
    port = free_udp_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "RADIUS_PASSWORD_MODE": settings.RADIUS_PASSWORD_MODE,
        "LOCKOUT_THRESHOLD": str(settings.LOCKOUT_THRESHOLD),
        "PASSWORD_FAILURES_PER_ID": str(settings.PASSWORD_FAILURES_PER_ID),
        "PASSWORD_FAILURES_PER_ADDRESS": str(settings.PASSWORD_FAILURES_PER_ADDRESS),
        **(extra_env or {}),
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_radius_server", "--host", "127.0.0.1", "--port", str(port)]
        + ["--workers", str(RADIUS_WORKERS), "--settings", "config.settings_api"],  # as deploy/ runs it
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline().strip() == "ready", process.stderr.read()

        def drain():
            for line in process.stderr:
                log.append(line)

        threading.Thread(target=drain, daemon=True).start()
        yield port
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def radius_server(radius_client, settings, radius_log, radius_env):
    with radius_server_process(settings, radius_log, radius_env) as port:
        yield port


def pbkdf2_password(person, password=PASSWORD):
    """The server process uses the production hasher, not the tests' fast one."""
    User.objects.filter(pk=person.pk).update(password=PBKDF2PasswordHasher().encode(password, "radiustestsalt"))


@pytest.fixture
def radius_person(vpn_person):
    pbkdf2_password(vpn_person)
    return vpn_person


def radclient(port, secret, attributes: dict, *, message_authenticator=True, timeout=3, tries=3, command="auth") -> str:
    """Sends one request as a VPN does: retransmitted when unanswered (the server answers a copy from its reply cache,
    so a slow first answer on a busy machine is not mistaken for no answer)."""
    lines = [
        f'{name} = "{value}"' if not str(value).startswith("0x") else f"{name} = {value}"
        for name, value in attributes.items()
    ]
    if message_authenticator:
        lines.append("Message-Authenticator = 0x00")
    result = subprocess.run(
        ["radclient", "-x", "-r", str(tries), "-t", str(timeout), f"127.0.0.1:{port}", command, secret],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=timeout * (tries + 2),
    )
    return result.stdout + result.stderr


def app_device(person):
    return person.registrations.get().app_device


def assert_signed_first(out: str) -> None:
    """The reply radclient received carries a Message-Authenticator as its first attribute (API-08)."""
    assert re.search(r"Received Access-\w+ [^\n]*\n\s*Message-Authenticator = 0x", out), out


def test_api08_pap_with_password_and_code_is_accepted_and_signed(radius_server, radius_client, radius_person):
    code = fresh_code(app_device(radius_person))
    out = radclient(
        radius_server, radius_client.secret, {"User-Name": "vpnuser", "User-Password": f"{PASSWORD},{code}"}
    )
    assert "Received Access-Accept" in out
    assert_signed_first(out)
    event = AuditEvent.objects.get(action="signin.second_factor_ok", subject=radius_person)
    assert details_of(event) == {"radius_client": "ASA", "factor": "authenticator_app", "entry_point": "radius"}
    assert re.fullmatch(r"[0-9a-f]{32}", event.details["request_id"])  # each RADIUS request has an id of its own
    # OTP-04: the same code again is refused.
    out = radclient(
        radius_server, radius_client.secret, {"User-Name": "vpnuser", "User-Password": f"{PASSWORD},{code}"}
    )
    assert "Received Access-Reject" in out


def test_api05_challenge_then_code(radius_server, radius_client, radius_person):
    out = radclient(radius_server, radius_client.secret, {"User-Name": "vpnuser", "User-Password": PASSWORD})
    assert "Received Access-Challenge" in out
    state = re.search(r"State = (0x[0-9a-f]+)", out).group(1)
    assert len(state) == 2 + 64
    challenge = RadiusChallenge.objects.get()
    assert challenge.consumed_at is None and challenge.client == radius_client
    assert (
        110
        <= (challenge.expires_at - AuditEvent.objects.get(action="vpn.radius_challenged").created_at).total_seconds()
        <= 120
    )
    code = fresh_code(app_device(radius_person))
    out = radclient(
        radius_server, radius_client.secret, {"User-Name": "vpnuser", "User-Password": code, "State": state}
    )
    assert "Received Access-Accept" in out
    # Single use: the State again, even with a new code, is refused.
    out = radclient(
        radius_server, radius_client.secret, {"User-Name": "vpnuser", "User-Password": "000000", "State": state}
    )
    assert "Received Access-Reject" in out


def test_api05_a_state_is_bound_to_its_person(radius_server, radius_client, radius_person, make_user, enroll, approve):
    other = make_user("other")
    enroll(other)
    approve(other)
    out = radclient(radius_server, radius_client.secret, {"User-Name": "vpnuser", "User-Password": PASSWORD})
    state = re.search(r"State = (0x[0-9a-f]+)", out).group(1)
    code = fresh_code(app_device(other))
    out = radclient(radius_server, radius_client.secret, {"User-Name": "other", "User-Password": code, "State": state})
    assert "Received Access-Reject" in out


def test_api08_a_wrong_secret_gets_no_answer(radius_server, radius_person):
    out = radclient(radius_server, "not-the-secret", {"User-Name": "vpnuser", "User-Password": PASSWORD}, timeout=1)
    assert "Received" not in out and "No reply" in out


def test_api08_a_request_without_message_authenticator_is_dropped(radius_server, radius_client, radius_person):
    code = fresh_code(app_device(radius_person))
    out = radclient(
        radius_server,
        radius_client.secret,
        {"User-Name": "vpnuser", "User-Password": f"{PASSWORD},{code}"},
        message_authenticator=False,
        timeout=1,
    )
    assert "Received" not in out and "No reply" in out
    assert not AuditEvent.objects.filter(action="signin.second_factor_ok").exists()


def test_api04_unknown_not_approved_locked_and_wrong_code_get_the_same_reject(
    radius_server, radius_client, radius_person, make_user, enroll
):
    waiting = make_user("waiting")
    enroll(waiting)
    pbkdf2_password(waiting)
    locked = make_user("locked")
    enroll(locked)
    pbkdf2_password(locked)
    User.objects.filter(pk=locked.pk).update(vpn_access=User.VpnAccess.APPROVED)
    User.objects.filter(pk=locked.pk).update(locked_at=timezone.now())
    replies = []
    for name, code in (
        ("nobody", "123456"),
        ("waiting", fresh_code(app_device(waiting))),
        ("locked", fresh_code(app_device(locked))),
        ("vpnuser", wrong_code(app_device(radius_person))),
    ):
        out = radclient(radius_server, radius_client.secret, {"User-Name": name, "User-Password": f"{PASSWORD},{code}"})
        replies.append(re.search(r"Received (Access-\w+).*?Reply-Message = \"([^\"]*)\"", out, re.S).groups())
    assert replies == [("Access-Reject", services.RADIUS_DENIED)] * 4


def test_otp01_lockout_is_shared_by_web_api_and_radius(radius_server, radius_client, radius_person, duo, settings):
    """Three failures, one through each door, lock at a threshold of three (the web counts last, in this
    process); then even a good code is refused at the RADIUS door."""
    settings.LOCKOUT_THRESHOLD = 3
    # The server's hasher first, or a web sign-in would re-hash the password with the tests' fast one.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher", *settings.PASSWORD_HASHERS]
    from django.test import Client

    device = app_device(radius_person)
    radclient(
        radius_server,
        radius_client.secret,
        {"User-Name": "vpnuser", "User-Password": f"{PASSWORD},{wrong_code(device)}"},
    )
    duo().auth(factor="passcode", username="vpnuser", passcode=wrong_code(device))
    web = Client()
    web.post(SIGN_IN, {"username": "vpnuser", "password": PASSWORD})
    web.post(SECOND_FACTOR, {"device": device.persistent_id, "code": wrong_code(device)})
    radius_person.refresh_from_db()
    assert radius_person.second_factor_failures == 3, list(AuditEvent.objects.values_list("action", "details"))
    entry_points = set(
        AuditEvent.objects.filter(action="signin.second_factor_failed").values_list("details__entry_point", flat=True)
    )
    assert entry_points == {"web", "vpn", "radius"}
    assert radius_person.is_locked
    out = radclient(
        radius_server,
        radius_client.secret,
        {"User-Name": "vpnuser", "User-Password": f"{PASSWORD},{fresh_code(device)}"},
    )
    assert "Received Access-Reject" in out


@pytest.mark.parametrize("mode", ["code_only"])
def test_code_only_mode_takes_the_code_alone(radius_client, radius_person, settings, mode, request):
    settings.RADIUS_PASSWORD_MODE = mode
    port = request.getfixturevalue("radius_server")
    code = fresh_code(app_device(radius_person))
    assert "Received Access-Accept" in radclient(
        port, radius_client.secret, {"User-Name": "vpnuser", "User-Password": code}
    )


def test_api07_the_database_going_away_gets_no_reply(radius_server, radius_client, radius_person, radius_log):
    """Every connection of the server is ended while it runs; the next request gets no reply (the VPN retransmits
    or asks its other server; a reject would end the person's attempt), never an accept, and is counted."""
    code = fresh_code(app_device(radius_person))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    # Only the tables' owner may rename one (the suite may run as the app's role, AC-10).
    with owner_cursor() as cursor:
        cursor.execute("ALTER TABLE identity_user RENAME TO identity_user_away")
    try:
        out = radclient(
            radius_server,
            radius_client.secret,
            {"User-Name": "vpnuser", "User-Password": f"{PASSWORD},{code}"},
            timeout=2,
            tries=2,
        )
    finally:
        with owner_cursor() as cursor:
            cursor.execute("ALTER TABLE identity_user_away RENAME TO identity_user")
    assert "Received" not in out and "No reply" in out
    wait_for(lambda: "no reply sent, never an accept (2 so far)" in "".join(radius_log), timeout=5)
    # The database back, the VPN's next try is answered.
    out = radclient(
        radius_server, radius_client.secret, {"User-Name": "vpnuser", "User-Password": f"{PASSWORD},{code}"}
    )
    assert "Received Access-Accept" in out


def test_a_burst_of_requests_is_answered_concurrently(radius_server, radius_client, make_user, enroll, approve):
    """Eight people at once, eight requests in flight (radclient -p 8): every one accepted, none lost."""
    people = []
    for n in range(8):
        person = make_user(f"burst{n}")
        enroll(person)
        approve(person)
        pbkdf2_password(person)
        people.append(person)
    packets = "".join(
        f'User-Name = "{p.username}"\nUser-Password = "{PASSWORD},{fresh_code(app_device(p))}"\n'
        "Message-Authenticator = 0x00\n\n"
        for p in people
    )
    result = subprocess.run(
        ["radclient", "-q", "-s", "-p", "8", "-t", "20", "-r", "1", f"127.0.0.1:{radius_server}", "auth"]
        + [radius_client.secret],
        input=packets,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert re.search(r"Accepted\s*:\s*8\b", result.stdout), result.stdout + result.stderr
    assert re.search(r"Lost\s*:\s*0\b", result.stdout)


def test_api03_a_disabled_radius_client_gets_no_answer(radius_server, radius_client, radius_person):
    services.update_radius_client(radius_client, name="ASA", network="127.0.0.1/32", enabled=False, actor=None)
    code = fresh_code(app_device(radius_person))
    out = radclient(
        radius_server, radius_client.secret, {"User-Name": "vpnuser", "User-Password": f"{PASSWORD},{code}"}, timeout=1
    )
    assert "Received" not in out and "No reply" in out
    assert AuditEvent.objects.filter(action="vpn.radius_client_changed", details__enabled=False).exists()


def test_api07_connections_dropped_while_requests_are_in_flight_get_no_reply_and_requests_resume(
    radius_client, busy_people, settings, monkeypatch, request
):
    """Six threads send codes through radclient without pause while another keeps ending the server's database
    connections, idle ones in its pool and ones mid-request (``vpn.tests.faults``). Every request is answered (with a
    reject unless the code is good and unused) or, when every try failed inside, gets no reply; never a wrong accept.
    Once the killing stops, a good code is accepted again."""
    # The VPN has checked the password: no password hashing, so the server is busy with the codes themselves.
    settings.RADIUS_PASSWORD_MODE = "code_only"
    # Without back-off every wrong code is compared and counted. The lockout stays (the server's checks hold it at
    # 10 at most): each person is locked after a few rounds, the lock itself written under fault like the rest.
    monkeypatch.setenv("OTP_TOTP_THROTTLE_FACTOR", "0")
    port = request.getfixturevalue("radius_server")
    server_log = request.getfixturevalue("radius_log")

    def send(n_thread, n, username, code):
        # Retried as a VPN retries: a request dropped before it could be signed (its client's row unread) is sent again.
        out = radclient(port, radius_client.secret, {"User-Name": username, "User-Password": code}, tries=3)
        answers = re.findall(r"Received (Access-\w+)", out)
        if not answers and "No reply" in out:
            return "error"  # every try failed inside: no reply, as a VPN would fail over (API-07)
        return {("Access-Accept",): "allow", ("Access-Reject",): "deny"}.get(tuple(answers), f"no answer: {out[-500:]}")

    answers, ended = checks_under_fault(send, busy_people)
    assert_failed_closed(answers, busy_people)
    # The fault hit the busy server: connections were ended and requests failed with them, with no reply.
    failed = sum("RADIUS request failed; no reply sent" in line for line in server_log)
    assert ended and failed, (ended, Counter(a[3] for a in answers), "".join(server_log)[-3000:])
    assert audit.verify_chain() is None

    # The killing has stopped: a good code is accepted again within a bounded number of requests. A connection ended
    # while idle is noticed before the next request (identity.sql.replace_if_ended) and replaced; one whose end
    # had not reached the socket yet fails that thread's next request (no reply): at most one failure per thread.
    mark, later = len(server_log), busy_people.later
    outcomes = []
    for _ in range(RADIUS_WORKERS + 1):
        code = fresh_code(app_device(later))
        out = radclient(port, radius_client.secret, {"User-Name": later.username, "User-Password": code})
        outcomes.append(re.findall(r"Received (Access-\w+)", out))
        if outcomes[-1] == ["Access-Accept"]:
            break
    assert outcomes[-1] == ["Access-Accept"], (outcomes, "".join(server_log[mark:]))


def test_api_09_the_work_queue_is_bounded_and_takes_names_in_turn():
    """Room for ``limit`` requests, ``PER_NAME`` of one name (waiting or being answered); names take turns."""
    queue = WorkQueue(limit=5)
    assert queue.put(b"flood", 1) and queue.put(b"flood", 2)
    assert PER_NAME == 2 and not queue.put(b"flood", 3)
    assert queue.put(b"alice", 4) and queue.put(b"bob", 5) and queue.put(b"carol", 6)
    assert not queue.put(b"dave", 7)  # full: refused at once, never queued past the VPN's timeout
    taken = [queue.take() for _ in range(5)]
    assert [item for _, _, item in taken] == [1, 4, 5, 6, 2]
    assert not queue.put(b"flood", 8)  # both of its requests are still being answered
    queue.done(b"flood")
    assert queue.put(b"flood", 9)


def request_named(name: bytes, packet_id: int = 1) -> bytes:
    """An Access-Request's bytes as far as the queue reads them: header, authenticator, User-Name."""
    return bytes([1, packet_id & 0xFF, 0, 22 + len(name)]) + bytes(16) + bytes([USER_NAME, 2 + len(name)]) + name


def test_api_09_a_request_that_finds_no_room_is_dropped_at_once_and_counted():
    # No worker takes anything: the queue stays full.
    server = RadiusProtocol(workers=0, queue=1, networks=ClientNetworks([(7, "10.0.0.0/24")]))
    server.datagram_received(request_named(b"anne"), ("10.0.0.5", 1645))
    server.datagram_received(request_named(b"bert", 2), ("10.0.0.5", 1645))
    assert server.counts == Counter({"overloaded: no room in the queue": 1})
    assert server.queue.take()[0] == (7, b"anne")


def dropped(reason: str) -> float:
    return REGISTRY.get_sample_value("enrollment_radius_dropped_total", {"reason": reason}) or 0.0


def test_api_09_a_flood_from_an_unknown_address_takes_no_place_and_no_query(radius_client):
    """Spoofed datagrams from outside every client's network, under the name of a person who is about to sign in:
    each is dropped as it arrives, with no database query, and the known client's request is queued and taken first.
    A flood from one client under that name does not take another client's places for it either."""
    networks = ClientNetworks()
    networks.load()
    other, _ = services.create_radius_client(name="Palo Alto", network="10.1.0.0/16", actor=None)
    networks.load()
    server = RadiusProtocol(workers=0, queue=4, networks=networks)
    before = dropped("unknown client")
    with CapturedStatements(connection) as queries:
        for n in range(2000):
            server.datagram_received(request_named(b"vpnuser", n), (f"192.0.2.{n % 250}", 1645))
        for n in range(10):
            server.datagram_received(request_named(b"vpnuser", n), ("10.1.2.3", 1645))
        server.datagram_received(request_named(b"vpnuser"), ("127.0.0.1", 40000))
    assert queries.captured_queries == []
    assert server.counts == Counter({"unknown client": 2000, "overloaded: no room in the queue": 10 - PER_NAME})
    assert dropped("unknown client") - before == 2000
    # The known client's request: in the queue, its name's turn not taken by the other client's flood.
    taken = [server.queue.take()[0] for _ in range(PER_NAME + 1)]
    assert taken[:2] == [(other.pk, b"vpnuser"), (radius_client.pk, b"vpnuser")]


def test_api_09_the_cache_of_addresses_is_bounded(radius_client, monkeypatch):
    monkeypatch.setattr(server_module, "CLIENTS_CACHED", 3)
    server = RadiusProtocol(workers=0, networks=ClientNetworks([(radius_client.pk, "127.0.0.0/8")]))
    for n in range(1, 10):
        server._client(f"127.0.0.{n}")
    assert list(server._clients) == ["127.0.0.7", "127.0.0.8", "127.0.0.9"]


def test_a_packet_that_is_not_a_request_is_counted_under_its_own_reason(radius_client):
    """An Accounting-Request (code 4) sent to the authentication port: dropped, counted as what it is."""
    server = RadiusProtocol(workers=0, networks=ClientNetworks([(radius_client.pk, "127.0.0.1/32")]))
    accounting = bytes([4, 1, 0, 20]) + bytes(16)
    before = dropped(server_module.NOT_A_REQUEST), dropped("bad packet")
    assert server._decode(accounting, ("127.0.0.1", 1646), radius_client, radius_client.secret.encode()) is None
    assert server.counts == Counter({server_module.NOT_A_REQUEST: 1})
    assert (dropped(server_module.NOT_A_REQUEST), dropped("bad packet")) == (before[0] + 1, before[1])


@pytest.mark.parametrize(
    ("typed", "readings"),
    [
        ("secret", [("secret", "")]),
        ("secret,123456", [("secret", "123456"), ("secret,123456", "")]),
        ("pa,ss word", [("pa,ss word", "")]),
        ("pa,ss,123 456", [("pa,ss", "123 456"), ("pa,ss,123 456", "")]),
        ("pw,abcd-efgh-ijkl-mnop", [("pw", "abcd-efgh-ijkl-mnop"), ("pw,abcd-efgh-ijkl-mnop", "")]),
        ("pw,1234", [("pw,1234", "")]),
        ("pw,", [("pw,", "")]),
    ],
)
def test_a_comma_splits_off_a_code_only_when_a_code_follows_it(typed, readings):
    assert services.password_candidates(typed) == readings


def test_a_password_with_a_comma_connects_without_a_trick(radius_client, radius_person, settings, request):
    """The password alone (challenge, then the code), or followed by ``,code``; one ending in something code-like
    too. A wrong one counts once toward the person's throttle, however many readings were tried."""
    port = request.getfixturevalue("radius_server")
    secret = radius_client.secret
    pbkdf2_password(radius_person, "correct,horse battery")
    out = radclient(port, secret, {"User-Name": "vpnuser", "User-Password": "correct,horse battery"}, timeout=6)
    assert "Received Access-Challenge" in out
    state = re.search(r"State = (0x[0-9a-f]+)", out).group(1)
    code = fresh_code(app_device(radius_person))
    out = radclient(port, secret, {"User-Name": "vpnuser", "User-Password": code, "State": state})
    assert "Received Access-Accept" in out
    # Both codes within tolerance are spent: a wrong one shows the password was read and the code checked.
    code = wrong_code(app_device(radius_person))
    out = radclient(port, secret, {"User-Name": "vpnuser", "User-Password": f"correct,horse battery,{code}"}, timeout=6)
    assert "Received Access-Reject" in out
    assert AuditEvent.objects.filter(action="signin.password_ok", subject=radius_person).count() == 2
    assert AuditEvent.objects.filter(action="signin.second_factor_failed", subject=radius_person).exists()

    pbkdf2_password(radius_person, "pin,123456")
    out = radclient(port, secret, {"User-Name": "vpnuser", "User-Password": "pin,123456"}, timeout=6)
    assert "Received Access-Challenge" in out
    failed = AuditEvent.objects.filter(action="signin.password_failed", subject=radius_person)
    assert not failed.exists()
    out = radclient(port, secret, {"User-Name": "vpnuser", "User-Password": "pin,654321"}, timeout=6)
    assert "Received Access-Reject" in out
    assert failed.count() == 1 and failed.get().details["entry_point"] == "radius"


@pytest.fixture
def limit_proxy_state(radius_client):
    services.update_radius_client(
        radius_client,
        name="ASA",
        network="127.0.0.1/32",
        enabled=True,
        message_authenticator="limit_proxy_state",
        actor=None,
    )


def test_api_08_limit_proxy_state_takes_no_message_authenticator_only_without_proxy_state(
    limit_proxy_state, radius_client, radius_person, request
):
    """As OpenVPN's radiusplugin sends them: no Message-Authenticator, no Proxy-State; accepted, and the reply is
    still signed first. The same with a Proxy-State (what Blast-RADIUS needs) gets no reply."""
    port = request.getfixturevalue("radius_server")
    code = fresh_code(app_device(radius_person))
    password = {"User-Name": "vpnuser", "User-Password": f"{PASSWORD},{code}"}
    out = radclient(port, radius_client.secret, password, message_authenticator=False)
    assert "Received Access-Accept" in out
    assert_signed_first(out)
    alone = {"User-Name": "vpnuser", "User-Password": PASSWORD}
    out = radclient(
        port, radius_client.secret, {**alone, "Proxy-State": "0x01"}, message_authenticator=False, timeout=1
    )
    assert "Received" not in out and "No reply" in out
    out = radclient(port, radius_client.secret, {**alone, "Proxy-State": "0x01"})
    assert "Received Access-Challenge" in out
    assert_signed_first(out)


def test_api_09_a_flood_of_wrong_passwords_from_one_vpn_keeps_no_one_else_out(
    radius_client, radius_person, make_user, settings, request
):
    """Three threads send wrong passwords through the VPN everyone shares (radclient, real UDP): for two people whose
    names are known and for names nobody has, some with ``,code``. Past the web's per-address limit, while the flood
    runs, another person signs in through the same VPN and is accepted within a VPN's timeout."""
    settings.PASSWORD_FAILURES_PER_ADDRESS = 20  # the web's own throttle, which RADIUS must not count toward
    known = []
    for n in range(2):
        person = make_user(f"known{n}")
        pbkdf2_password(person)
        known.append(person.username)
    port = request.getfixturevalue("radius_server")
    secret = radius_client.secret
    stop = threading.Event()

    def flood(n_thread):
        n = 0
        while not stop.is_set():
            packets = []
            for _ in range(20):
                n += 1
                name = known[n % 2] if n % 4 == 0 else f"nobody{n_thread}x{n}"
                password = f"wrong{n}" if n % 3 else f"wrong{n},123456"
                packets.append(f'User-Name = "{name}"\nUser-Password = "{password}"\nMessage-Authenticator = 0x00\n')
            subprocess.run(
                ["radclient", "-q", "-p", "20", "-t", "2", "-r", "1", f"127.0.0.1:{port}", "auth", secret],
                input="\n".join(packets),
                capture_output=True,
                text=True,
                timeout=60,
            )

    floods = [threading.Thread(target=flood, args=(n,), daemon=True) for n in range(3)]
    for each in floods:
        each.start()
    try:
        failures = AuditEvent.objects.filter(action="signin.password_failed", ip="127.0.0.1")
        wait_for(lambda: failures.count() > settings.PASSWORD_FAILURES_PER_ADDRESS, timeout=60)
        code = fresh_code(app_device(radius_person))
        before, began = failures.count(), time.monotonic()
        # Retransmitted as a VPN does: 5 s apart, three tries, 15 s in all.
        out = radclient(
            port, secret, {"User-Name": "vpnuser", "User-Password": f"{PASSWORD},{code}"}, timeout=5, tries=3
        )
        took = time.monotonic() - began
        during = failures.count()
        assert all(each.is_alive() for each in floods)
    finally:
        stop.set()
        for each in floods:
            each.join(60)
    assert "Received Access-Accept" in out and took < 15, (took, out)
    assert during > before > settings.PASSWORD_FAILURES_PER_ADDRESS, (before, during, took)
    # Counted per typed ID: the VPN's address is throttled neither here nor at the web's sign-in.
    assert set(failures.values_list("details__entry_point", flat=True)) == {"radius"}
    assert not identity_services.password_sign_in_throttled("someone", ip="127.0.0.1", by_address=True)
    assert not AuditEvent.objects.filter(action="signin.password_throttled", subject=radius_person).exists()


def test_api_09_wrong_web_passwords_from_the_vpns_address_keep_no_one_off_the_vpn(
    radius_client, radius_person, settings, request, client
):
    """People behind the VPN reach the web sign-in through the concentrator's NAT, so their wrong web passwords come
    from the address the RADIUS requests come from. Past the web's per-address limit the web refuses that address;
    RADIUS, which counts per person only, still lets in the right password and code."""
    settings.PASSWORD_FAILURES_PER_ADDRESS = 3
    port = request.getfixturevalue("radius_server")
    for n in range(settings.PASSWORD_FAILURES_PER_ADDRESS):
        client.post(SIGN_IN, {"username": f"someone{n}", "password": "wrong"}, REMOTE_ADDR="127.0.0.1")
    assert identity_services.password_sign_in_throttled("someone", ip="127.0.0.1", by_address=True)
    out = radclient(
        port,
        radius_client.secret,
        {"User-Name": "vpnuser", "User-Password": f"{PASSWORD},{fresh_code(app_device(radius_person))}"},
    )
    assert "Received Access-Accept" in out, out
    assert AuditEvent.objects.filter(action="signin.password_throttled").count() == 1  # the web's, asked above


@pytest.mark.parametrize("mode", ["password", "code_only"])
def test_a_user_name_that_is_not_text_is_rejected_without_an_error(
    radius_client, radius_person, radius_log, settings, request, mode
):
    """A User-Name that is not UTF-8 (pyrad hands it over as bytes) or holds a NUL (which PostgreSQL cannot take)
    is nobody's name: Access-Reject, audited without the name, with nothing logged as an error, and nothing counted
    toward anyone; a State sent with one too."""
    settings.RADIUS_PASSWORD_MODE = mode
    port = request.getfixturevalue("radius_server")
    code = fresh_code(app_device(radius_person))
    for name in ("vpnuser\\377", "vpn\\000user"):  # radclient's octal escapes: a byte 0xff, a NUL
        for extra in ({}, {"State": "0x" + "ab" * 32}):
            password = code if mode == "code_only" else f"{PASSWORD},{code}"
            out = radclient(port, radius_client.secret, {"User-Name": name, "User-Password": password, **extra})
            assert "Received Access-Reject" in out and 'Reply-Message = "Access denied."' in out, out
    rejected = AuditEvent.objects.filter(action="vpn.radius_rejected")
    assert [details_of(event) for event in rejected] == [
        {"radius_client": "ASA", "reason": "the user name is not text"}
    ] * 4
    assert not AuditEvent.objects.exclude(action="vpn.radius_rejected").filter(created_at__gte=rejected[0].created_at)
    assert not [line for line in radius_log if "ERROR" in line or "Traceback" in line], radius_log
    # The person's own request still works.
    out = radclient(port, radius_client.secret, {"User-Name": "vpnuser", "User-Password": password})
    assert "Received Access-Accept" in out, out


def test_a_request_without_a_password_is_rejected_and_counts_toward_no_one(radius_server, radius_client, radius_person):
    """As strongSwan's IKEv2 sends them (EAP, which we do not speak): no User-Password. Rejected, and the person's
    password throttle is untouched."""
    out = radclient(radius_server, radius_client.secret, {"User-Name": "vpnuser", "EAP-Message": "0x0201000a01"})
    assert "Received Access-Reject" in out
    assert not AuditEvent.objects.filter(action="signin.password_failed").exists()
    assert AuditEvent.objects.get(action="vpn.radius_rejected").details["reason"] == "no password"


def test_a_password_whose_length_is_not_a_multiple_of_16_is_rejected_without_an_error(
    radius_server, radius_client, radius_person, radius_log
):
    """A User-Password must be a multiple of 16 octets (RFC 2865 section 5.2); one that is not cannot be decrypted.
    Access-Reject, audited, counted toward no one, nothing logged as an error."""
    from pyrad import packet

    request = packet.AuthPacket(code=packet.AccessRequest, secret=radius_client.secret.encode(), dict=DICTIONARY)
    request["User-Name"] = "vpnuser"
    request["User-Password"] = b"short"  # raw, not hidden: 5 octets
    request.add_message_authenticator()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        sock.connect(("127.0.0.1", radius_server))
        sock.send(request.RequestPacket())
        reply = sock.recv(4096)
    assert reply[0] == packet.AccessReject
    rejected = AuditEvent.objects.get(action="vpn.radius_rejected")
    assert rejected.details["reason"] == "the password is malformed"
    assert not AuditEvent.objects.filter(action="signin.password_failed").exists()
    assert not [line for line in radius_log if "ERROR" in line or "Traceback" in line], radius_log


def test_a_reply_message_longer_than_one_attribute_is_sent_in_several(
    radius_client, make_user, approve, settings, radius_log
):
    """A Reply-Message holds 253 octets at most; a help desk's contact details can make one longer. It is sent in
    several, each within the limit and cut between words, which read in their order give the whole message."""
    contact = (
        "the IT Service Desk at the Library, ground floor (+1 617 555 0100, Monday to Friday 8:00 to 18:00, "
        "Saturday 10:00 to 14:00), or servicedesk@example.edu with your institution ID and a phone number to call"
    )
    settings.HELP_DESK_CONTACT = contact
    person = make_user("held")
    approve(person)
    pbkdf2_password(person)
    User.objects.filter(pk=person.pk).update(lost_last_factor_at=timezone.now())  # BND-02: no device, none to come
    with radius_server_process(settings, radius_log, {"HELP_DESK_CONTACT": contact}) as port:
        out = radclient(port, radius_client.secret, {"User-Name": "held", "User-Password": PASSWORD})
    assert "Received Access-Reject" in out, out
    pieces = re.findall(r'Reply-Message = "([^"]*)"', out)
    assert len(pieces) == 2, out
    assert all(len(piece.encode()) <= 253 and piece.endswith(" ") for piece in pieces[:-1]), pieces
    assert "".join(pieces) == texts.held_at_the_vpn() and contact in texts.held_at_the_vpn()
    assert AuditEvent.objects.filter(action="vpn.radius_rejected", subject=person).count() == 1
    assert not [line for line in radius_log if "ERROR" in line or "Traceback" in line], radius_log


@pytest.mark.parametrize(
    "text",
    ["Access denied.", "", "word " * 120, "é" * 300, "x" * 600, "Call " + "Ω" * 130 + " or write to us."],
)
def test_reply_messages_fit_the_attribute_and_give_back_the_text(text):
    pieces = server_module.reply_messages(text)
    assert "".join(pieces) == text
    assert all(0 < len(piece.encode()) <= 253 for piece in pieces)
    assert len(pieces) == (len(text.encode()) + 252) // 253 or " " in text


def test_a_phone_only_person_replies_sms_to_the_challenge_and_gets_a_code_by_text(
    radius_server, radius_client, make_user, approve
):
    """Duo's Auth Proxy words at a challenge: "sms" texts a code (any case), then a new challenge says where it went;
    asking counts toward no lockout. The texted code then lets the person in."""
    person = make_user("phoneonly")
    pbkdf2_password(person)
    PhoneDevice.objects.create(user=person, name="Mobile", number="+16175550122", can_text=True, confirmed=True)
    approve(person)
    out = radclient(radius_server, radius_client.secret, {"User-Name": "phoneonly", "User-Password": PASSWORD})
    assert "Received Access-Challenge" in out, out
    assert "Reply-Message = \"Reply 'sms' for a text or 'phone' for a call, then enter the code you get.\"" in out
    state = re.search(r"State = (0x[0-9a-f]+)", out).group(1)

    out = radclient(
        radius_server, radius_client.secret, {"User-Name": "phoneonly", "User-Password": "SMS", "State": state}
    )
    assert "Received Access-Challenge" in out, out
    assert 'Reply-Message = "We are texting a code to +1********22. Enter it here."' in out, out
    again = re.search(r"State = (0x[0-9a-f]+)", out.split("Received")[1]).group(1)
    assert again != state
    [text] = OutboundMessage.objects.filter(channel="sms", recipient="+16175550122")
    person.refresh_from_db()
    assert person.second_factor_failures == 0
    assert not AuditEvent.objects.filter(action="signin.second_factor_failed").exists()
    requested = AuditEvent.objects.get(action="vpn.code_requested", subject=person)
    assert details_of(requested) == {"radius_client": "ASA", "factor": "sms", "sent": True}

    code = re.search(r"\b(\d{6})\b", crypto.decrypt(text.encrypted_body).decode()).group(1)
    out = radclient(
        radius_server, radius_client.secret, {"User-Name": "phoneonly", "User-Password": code, "State": again}
    )
    assert "Received Access-Accept" in out, out


def texted_code(number: str) -> str:
    [text] = OutboundMessage.objects.filter(channel="sms", recipient=number)
    return re.search(r"\b(\d{6})\b", crypto.decrypt(text.encrypted_body).decode()).group(1)


def test_code_only_mode_sms_sends_a_code_and_rejects_without_counting_a_wrong_code(
    radius_client, radius_person, settings, request
):
    """In ``code_only`` mode the field holds the code alone: "sms" there is Duo's word for "text me one", not a wrong
    code. As Duo's Auth Proxy does where it cannot challenge, the code is sent and the attempt rejected with words
    saying where it went; the texted code then lets the person in. At a threshold of one, a counted failure would
    have locked them."""
    settings.RADIUS_PASSWORD_MODE = "code_only"
    settings.LOCKOUT_THRESHOLD = 1
    PhoneDevice.objects.create(user=radius_person, name="Mobile", number="+16175550122", can_text=True, confirmed=True)
    port = request.getfixturevalue("radius_server")
    out = radclient(port, radius_client.secret, {"User-Name": "vpnuser", "User-Password": "sms"})
    assert "Received Access-Reject" in out, out
    assert 'Reply-Message = "We are texting a code to +1********22. Enter it here."' in out, out
    radius_person.refresh_from_db()
    assert radius_person.second_factor_failures == 0 and not radius_person.is_locked
    assert not AuditEvent.objects.filter(action="signin.second_factor_failed").exists()
    requested = AuditEvent.objects.get(action="vpn.code_requested", subject=radius_person)
    assert details_of(requested) == {"radius_client": "ASA", "factor": "sms", "sent": True}

    out = radclient(port, radius_client.secret, {"User-Name": "vpnuser", "User-Password": texted_code("+16175550122")})
    assert "Received Access-Accept" in out, out


def test_code_only_mode_sms_for_an_unknown_id_sends_nothing_and_counts_nothing(radius_client, settings, request):
    settings.RADIUS_PASSWORD_MODE = "code_only"
    port = request.getfixturevalue("radius_server")
    out = radclient(port, radius_client.secret, {"User-Name": "nobody", "User-Password": "phone"})
    assert "Received Access-Reject" in out, out
    assert "No phone of yours takes calls here." in out, out
    assert not OutboundMessage.objects.filter(channel__in=("sms", "voice")).exists()
    assert not AuditEvent.objects.filter(action="signin.second_factor_failed").exists()


def test_password_comma_sms_checks_the_password_then_texts_a_code_and_challenges(
    radius_server, radius_client, radius_person, settings
):
    """Duo's append mode, ``password,sms``: the password is checked as ``password,code`` checks it; when right, a code
    is texted and asked for by a challenge saying where it went, with no wrong code counted (a threshold of one would
    lock). The texted code answers the challenge. A wrong password with ``,sms`` is a wrong password, as before: the
    same reject, counted once, nothing sent."""
    settings.LOCKOUT_THRESHOLD = 1
    PhoneDevice.objects.create(user=radius_person, name="Mobile", number="+16175550122", can_text=True, confirmed=True)
    out = radclient(radius_server, radius_client.secret, {"User-Name": "vpnuser", "User-Password": "wrong-pass,sms"})
    assert "Received Access-Reject" in out and 'Reply-Message = "Access denied."' in out, out
    assert not OutboundMessage.objects.filter(channel__in=("sms", "voice")).exists()
    assert AuditEvent.objects.filter(action="signin.password_failed").count() == 1

    out = radclient(radius_server, radius_client.secret, {"User-Name": "vpnuser", "User-Password": f"{PASSWORD},SMS"})
    assert "Received Access-Challenge" in out, out
    assert 'Reply-Message = "We are texting a code to +1********22. Enter it here."' in out, out
    state = re.search(r"State = (0x[0-9a-f]+)", out.split("Received")[1]).group(1)
    radius_person.refresh_from_db()
    assert radius_person.second_factor_failures == 0 and not radius_person.is_locked
    assert not AuditEvent.objects.filter(action="signin.second_factor_failed").exists()
    requested = AuditEvent.objects.get(action="vpn.code_requested", subject=radius_person)
    assert details_of(requested) == {"radius_client": "ASA", "factor": "sms", "sent": True}

    code = texted_code("+16175550122")
    out = radclient(
        radius_server, radius_client.secret, {"User-Name": "vpnuser", "User-Password": code, "State": state}
    )
    assert "Received Access-Accept" in out, out
