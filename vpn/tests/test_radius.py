"""The RADIUS command started as a process, asked by Debian's ``radclient`` (API-05, API-08, OTP-01, API-04)."""

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection
from django.utils import timezone

from identity import audit
from identity.models import AuditEvent, User
from testsupport import PASSWORD, SECOND_FACTOR, SIGN_IN, fresh_code, owner_cursor, wrong_code
from vpn import services
from vpn.models import RadiusChallenge
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


@pytest.fixture
def radius_server(radius_client, settings, radius_log):
    """``manage.py run_radius_server`` in its own process, on the test database."""
    db = connection.settings_dict
    port = free_udp_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "RADIUS_PASSWORD_MODE": settings.RADIUS_PASSWORD_MODE,
        "LOCKOUT_THRESHOLD": str(settings.LOCKOUT_THRESHOLD),
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "run_radius_server", "--host", "127.0.0.1", "--port", str(port)]
        + ["--workers", str(RADIUS_WORKERS)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "ready", process.stderr.read()

    def drain():
        for line in process.stderr:
            radius_log.append(line)

    threading.Thread(target=drain, daemon=True).start()
    yield port
    process.terminate()
    process.wait(10)


def pbkdf2_password(person):
    """The server process uses the production hasher, not the tests' fast one."""
    User.objects.filter(pk=person.pk).update(password=PBKDF2PasswordHasher().encode(PASSWORD, "radiustestsalt"))


@pytest.fixture
def radius_person(vpn_person):
    pbkdf2_password(vpn_person)
    return vpn_person


def radclient(port, secret, attributes: dict, *, message_authenticator=True, timeout=3, tries=1) -> str:
    lines = [
        f'{name} = "{value}"' if not str(value).startswith("0x") else f"{name} = {value}"
        for name, value in attributes.items()
    ]
    if message_authenticator:
        lines.append("Message-Authenticator = 0x00")
    result = subprocess.run(
        ["radclient", "-x", "-r", str(tries), "-t", str(timeout), f"127.0.0.1:{port}", "auth", secret],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=timeout * (tries + 2),
    )
    return result.stdout + result.stderr


def app_device(person):
    return person.registrations.get().app_device


def test_api08_pap_with_password_and_code_is_accepted_and_signed(radius_server, radius_client, radius_person):
    code = fresh_code(app_device(radius_person))
    out = radclient(
        radius_server, radius_client.secret, {"User-Name": "vpnuser", "User-Password": f"{PASSWORD},{code}"}
    )
    assert "Received Access-Accept" in out
    assert "Message-Authenticator" in out.split("Received Access-Accept")[1]
    event = AuditEvent.objects.get(action="signin.second_factor_ok", subject=radius_person)
    assert event.details == {"radius_client": "ASA", "factor": "authenticator_app", "entry_point": "radius"}
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


def test_api07_the_database_going_away_rejects(radius_server, radius_client, radius_person):
    """Every connection of the server is ended while it runs; the next requests are rejected, never accepted."""
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
            radius_server, radius_client.secret, {"User-Name": "vpnuser", "User-Password": f"{PASSWORD},{code}"}
        )
    finally:
        with owner_cursor() as cursor:
            cursor.execute("ALTER TABLE identity_user_away RENAME TO identity_user")
    assert "Received Access-Reject" in out


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


def test_api07_connections_dropped_while_requests_are_in_flight_reject_and_requests_resume(
    radius_client, busy_people, settings, monkeypatch, request
):
    """Six threads send codes through radclient without pause while another keeps ending the server's database
    connections, idle ones in its pool and ones mid-request (``vpn.tests.faults``). Every request is answered, with a
    reject unless the code is good and unused; once the killing stops, a good code is accepted again."""
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
        return {("Access-Accept",): "allow", ("Access-Reject",): "deny"}.get(tuple(answers), f"no answer: {out[-500:]}")

    answers, ended = checks_under_fault(send, busy_people)
    assert_failed_closed(answers, busy_people)
    # The fault hit the busy server: connections were ended and requests failed with them, answered with a reject.
    failed = sum("RADIUS request failed; answered with a reject" in line for line in server_log)
    assert ended and failed, (ended, Counter(a[3] for a in answers), "".join(server_log)[-3000:])
    assert audit.verify_chain() is None

    # The killing has stopped: a good code is accepted again within a bounded number of requests. A connection ended
    # while idle is noticed before the next request (identity.sql.without_health_check) and replaced; one whose end
    # had not reached the socket yet fails that thread's next request (a reject): at most one failure per thread.
    mark, later = len(server_log), busy_people.later
    outcomes = []
    for _ in range(RADIUS_WORKERS + 1):
        code = fresh_code(app_device(later))
        out = radclient(port, radius_client.secret, {"User-Name": later.username, "User-Password": code})
        outcomes.append(re.findall(r"Received (Access-\w+)", out))
        if outcomes[-1] == ["Access-Accept"]:
            break
    assert outcomes[-1] == ["Access-Accept"], (outcomes, "".join(server_log[mark:]))
