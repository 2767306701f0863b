"""The Access-Challenge State at the service: it expires, and it is bound to the client it was given to (API-05)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from freezegun import freeze_time

from testsupport import PASSWORD, fresh_code
from vpn import services

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


@pytest.fixture
def clients(db):
    first, _ = services.create_radius_client(name="ASA", network="10.0.0.1/32", actor=None)
    second, _ = services.create_radius_client(name="Palo Alto", network="10.0.0.2/32", actor=None)
    return first, second


def challenge(person, client) -> bytes:
    answer = services.radius_authenticate(
        client, username=person.username, password=PASSWORD, state=None, ip="10.0.0.1"
    )
    assert answer.outcome == "challenge"
    return answer.state


def answer(person, client, state):
    code = fresh_code(person.registrations.get().app_device)
    return services.radius_authenticate(client, username=person.username, password=code, state=state, ip="10.0.0.1")


def test_api05_a_state_answered_after_two_minutes_is_refused(vpn_person, clients):
    state = challenge(vpn_person, clients[0])
    with freeze_time(timezone.now() + timedelta(seconds=121)):
        assert answer(vpn_person, clients[0], state).outcome == "reject"


def test_api05_a_state_answered_through_another_client_is_refused_and_spent(vpn_person, clients):
    state = challenge(vpn_person, clients[0])
    assert answer(vpn_person, clients[1], state).outcome == "reject"
    assert answer(vpn_person, clients[0], state).outcome == "reject"  # single use, even by the right client


def test_api05_a_state_answered_in_time_by_its_client_is_accepted(vpn_person, clients):
    state = challenge(vpn_person, clients[0])
    assert answer(vpn_person, clients[0], state).outcome == "accept"


def test_a_client_is_found_by_its_ipv4_address_mapped_into_ipv6(clients):
    """A server listening on "::" sees an IPv4 VPN as ``::ffff:a.b.c.d``; it is still that client, and no other."""
    assert services.radius_client_for("::ffff:10.0.0.2") == clients[1]
    assert services.radius_client_for("10.0.0.2") == clients[1]
    assert services.radius_client_for("::ffff:10.0.0.3") is None
