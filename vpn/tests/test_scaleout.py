"""Past one machine (docs/operations.md): two RADIUS servers and two web nodes, each a real process, on one
PostgreSQL. A VPN fails over between the RADIUS servers in the middle of an Access-Challenge, and a State answered on
both is accepted once (API-05, API-07); a session started on one web node works on the other; a web node killed while
people sign in leaves every sign-in whole, done on the node that lives, with no lockout and no doubled event."""

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.conf import global_settings
from django.db import connections
from django.urls import reverse

from identity.models import AuditEvent
from testsupport import PASSWORD, SECOND_FACTOR, SIGN_IN, fresh_code, totp_for

# Fixtures (radius_client, radius_person, database) and helpers of the one-server tests.
from vpn.tests.test_radius import radclient, radius_client, radius_person, radius_server_process  # noqa: F401
from vpn.tests.test_restore_drill import KEY, Site, _site_env, database  # noqa: F401

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

STATE = re.compile(r"State = (0x[0-9a-f]+)")
CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


# --- Two RADIUS servers ------------------------------------------------------------------------------


@pytest.fixture
def two_radius_servers(radius_client, settings):  # noqa: F811
    log: list[str] = []
    with radius_server_process(settings, log) as first, radius_server_process(settings, log) as second:
        yield first, second


def challenge(port, client) -> str:
    out = radclient(port, client.secret, {"User-Name": "vpnuser", "User-Password": PASSWORD})
    assert "Received Access-Challenge" in out, out
    return STATE.search(out).group(1)


def test_api_05_a_challenge_started_on_one_radius_server_is_answered_on_the_other(
    two_radius_servers,
    radius_client,  # noqa: F811
    radius_person,  # noqa: F811
):
    first, second = two_radius_servers
    state = challenge(first, radius_client)
    code = fresh_code(radius_person.registrations.get().app_device)
    out = radclient(second, radius_client.secret, {"User-Name": "vpnuser", "User-Password": code, "State": state})
    assert "Received Access-Accept" in out, out
    event = AuditEvent.objects.get(action="signin.second_factor_ok", subject=radius_person)
    assert event.details["entry_point"] == "radius"
    # Spent on the second, it is spent on the first too.
    out = radclient(first, radius_client.secret, {"User-Name": "vpnuser", "User-Password": code, "State": state})
    assert "Received Access-Reject" in out, out


def test_api_07_a_state_answered_on_both_radius_servers_at_once_is_accepted_once(
    two_radius_servers,
    radius_client,  # noqa: F811
    radius_person,  # noqa: F811
):
    """A VPN that gave up waiting on one server and asked the other: both answers arrive together, each with a code
    the person's app shows (the current step's and the next one's, both within tolerance), so only the State's
    single use, in PostgreSQL, can refuse one of them."""
    first, second = two_radius_servers
    state = challenge(first, radius_client)
    device = radius_person.registrations.get().app_device
    device.refresh_from_db()
    step = int(time.time()) // 30
    if device.last_t >= step:  # enrolment spent this step: wait for a step with two unspent codes
        time.sleep(30 - time.time() % 30 + 0.2)
        step += 1

    codes = [totp_for(device).at(step * 30), totp_for(device).at((step + 1) * 30)]
    barrier = threading.Barrier(2)

    def answer(port, code):
        barrier.wait()
        return radclient(port, radius_client.secret, {"User-Name": "vpnuser", "User-Password": code, "State": state})

    with ThreadPoolExecutor(2) as pool:
        outs = list(pool.map(answer, (first, second), codes))
    replies = sorted(re.search(r"Received (Access-\w+)", out).group(1) for out in outs)
    assert replies == ["Access-Accept", "Access-Reject"], outs
    assert AuditEvent.objects.filter(action="signin.second_factor_ok", subject=radius_person).count() == 1
    refused = AuditEvent.objects.filter(action="vpn.radius_rejected", details__reason="state not valid here")
    assert refused.count() == 1


# --- Two web nodes -----------------------------------------------------------------------------------


@pytest.fixture
def web_people(settings, make_user, enroll):
    """People with an authenticator app, their passwords hashed as the nodes will check them."""
    settings.FACTOR_ENCRYPTION_KEYS = [KEY]
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS

    def make(count):
        people = [make_user(f"node{n}") for n in range(count)]
        for person in people:
            enroll(person)
        return people

    return make


@pytest.fixture
def two_web_nodes(database, tmp_path):  # noqa: F811 (the fixture imported above)
    env = _site_env(database, database["name"])
    nodes = []
    try:
        nodes.append(Site(env, tmp_path / "web1.log"))
        nodes.append(Site(env, tmp_path / "web2.log"))
        yield nodes
    finally:
        for node in nodes:
            if node.process.poll() is None:
                node.stop()


def unspent_code(device) -> str:
    """A code the device has not spent: this step's or the next; after a retry spent both, the step after."""
    try:
        return fresh_code(device)
    except AssertionError:
        time.sleep(30 - time.time() % 30 + 0.2)
        return fresh_code(device)


def test_a_session_started_on_one_web_node_works_on_the_other(two_web_nodes, web_people):
    first, second = two_web_nodes
    (person,) = web_people(1)
    browser = requests.Session()  # both nodes are 127.0.0.1: one cookie jar, as behind one load balancer
    page = browser.get(f"{first.url}{SIGN_IN}", timeout=30)
    answer = browser.post(
        f"{first.url}{SIGN_IN}",
        data={
            "csrfmiddlewaretoken": CSRF.search(page.text).group(1),
            "username": person.username,
            "password": PASSWORD,
        },
        timeout=30,
    )
    device = person.registrations.get().app_device
    # The second factor on the other node: the pending sign-in is in the session's row too.
    answer = browser.post(
        f"{second.url}{SECOND_FACTOR}",
        data={
            "csrfmiddlewaretoken": CSRF.search(answer.text).group(1),
            "device": device.persistent_id,
            "code": fresh_code(device),
        },
        timeout=30,
        allow_redirects=False,
    )
    assert answer.status_code == 302 and SIGN_IN not in answer.headers["Location"], answer.text[:2000]
    devices = reverse("devices:my_devices")
    for node in (first, second):
        page = browser.get(f"{node.url}{devices}", timeout=30, allow_redirects=False)
        assert page.status_code == 200, page.headers
    # Signed out on one, signed out on both.
    browser.post(
        f"{first.url}{reverse('identity:sign_out')}",
        data={"csrfmiddlewaretoken": CSRF.search(page.text).group(1)},
        timeout=30,
    )
    page = browser.get(f"{second.url}{devices}", timeout=30, allow_redirects=False)
    assert page.status_code == 302 and SIGN_IN in page.headers["Location"]


class SignIn:
    """One person's sign-in, each step sent to the node a round-robin load balancer would pick; a step the node
    cannot take (connection refused or reset) is sent again to the other node, as a retrying client or a load
    balancer's redispatch does. A retried code step takes a code the device has not spent."""

    def __init__(self, person, nodes, first: int, refused: list, on_send=None):
        self.person, self.nodes, self.turn, self.refused, self.on_send = person, nodes, first, refused, on_send
        self.device = person.registrations.get().app_device
        self.browser = requests.Session()

    def _send(self, method, path, make_data=None):
        for _ in range(len(self.nodes)):
            node = self.nodes[self.turn % len(self.nodes)]
            self.turn += 1
            started = time.monotonic()
            try:
                data = make_data() if make_data else None
                if self.on_send:
                    self.on_send(node, method, path)
                return node, self.browser.request(
                    method, f"{node.url}{path}", data=data, timeout=60, allow_redirects=False
                )
            except requests.ConnectionError:
                self.refused.append((node, self.person.username, path, started, time.monotonic()))
        raise AssertionError(f"no node took {path} for {self.person.username}")

    def run(self) -> str:
        try:
            return self._run()
        finally:
            connections.close_all()  # this thread's, opened to read the device's spent step

    def _run(self) -> str:
        _, page = self._send("GET", SIGN_IN)
        token = CSRF.search(page.text).group(1)
        _, answer = self._send(
            "POST",
            SIGN_IN,
            lambda: {"csrfmiddlewaretoken": token, "username": self.person.username, "password": PASSWORD},
        )
        assert answer.status_code == 302 and SECOND_FACTOR in answer.headers["Location"], answer.status_code
        _, page = self._send("GET", SECOND_FACTOR)
        token = CSRF.search(page.text).group(1)
        _, answer = self._send(
            "POST",
            SECOND_FACTOR,
            lambda: {
                "csrfmiddlewaretoken": token,
                "device": self.device.persistent_id,
                "code": unspent_code(self.device),
            },
        )
        assert answer.status_code == 302 and SIGN_IN not in answer.headers["Location"], answer.text[:2000]
        node, page = self._send("GET", reverse("devices:my_devices"))
        assert page.status_code == 200, page.headers
        return node.url


def test_a_web_node_killed_while_people_sign_in_leaves_every_sign_in_whole(two_web_nodes, web_people):
    first, second = two_web_nodes
    people = web_people(12)
    refused: list = []
    armed, killed = threading.Event(), threading.Event()
    killed_at = []

    def kill_once_a_password_is_in_flight(node, method, path):
        """Armed midway: the second node dies 0.1 s after a password is sent to it, while it hashes the password
        (PBKDF2, a few tenths of a second): a request in flight, as well as those the round robin sends it after."""
        if node is second and method == "POST" and path == SIGN_IN and armed.is_set():
            armed.clear()

            def kill():
                killed_at.append(time.monotonic())
                second.kill()
                killed.set()

            threading.Timer(0.1, kill).start()

    sign_ins = [
        SignIn(person, two_web_nodes, n, refused, kill_once_a_password_is_in_flight) for n, person in enumerate(people)
    ]
    with ThreadPoolExecutor(4) as pool:
        running = [pool.submit(sign_in.run) for sign_in in sign_ins]
        while sum(future.done() for future in running) < len(running) // 3:
            time.sleep(0.05)
        armed.set()
        assert killed.wait(120), "no password went to the second node after the first third"
        done = [future.result() for future in running]  # each sign-in completed, or this raises

    # Only the dead node refused, and only once it was dead: the request it held when killed, and those after.
    assert {node for node, *_ in refused} == {second}, refused
    assert all(ended >= killed_at[0] for *_, ended in refused), refused
    assert any(path == SIGN_IN and started < killed_at[0] for _, _, path, started, _ in refused), refused
    # Nothing half-done, nothing twice: one password and one second factor each (or, where the dying node took a
    # step and died before answering, that step counted once there and once on the node that took it again).
    for person in people:
        events = AuditEvent.objects.filter(subject=person)
        retried = {path for _, username, path, *_ in refused if username == person.username}
        for action, path in (("signin.password_ok", SIGN_IN), ("signin.second_factor_ok", SECOND_FACTOR)):
            count = events.filter(action=action).count()
            assert count == 1 or (path in retried and count == 2), (person.username, action, count)
    assert not AuditEvent.objects.filter(
        action__in=("signin.password_failed", "signin.second_factor_failed", "account.locked", "signin.refused_locked")
    ).exists()
    assert len(done) == len(people) and set(done) <= {first.url, second.url}
    # Those signed in are signed in on the node that lives.
    for sign_in in sign_ins:
        page = sign_in.browser.get(f"{first.url}{reverse('devices:my_devices')}", timeout=30, allow_redirects=False)
        assert page.status_code == 200
