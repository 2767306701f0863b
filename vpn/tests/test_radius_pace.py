"""API-04 at the RADIUS service: a refusal for an ID nobody has waits as long as a known person's password check
would take, counted in checks of the kind that person's would be: a hash per reading for local accounts, one bind
where the directory decides; and binds and hashes are averaged apart (the site's one rule,
identity.directory.pace)."""

import pytest

from identity.directory import pace
from testsupport import PASSWORD
from vpn import services

pytestmark = [pytest.mark.django_db]


@pytest.fixture
def client(db):
    client, _ = services.create_radius_client(name="ASA", network="10.0.0.1/32", actor=None)
    return client


def refusal(client, username, typed):
    answer = services.radius_authenticate(client, username=username, password=typed, state=None, ip="10.0.0.1")
    assert answer.outcome == "reject"
    return answer


def test_api04_an_unknown_id_waits_a_hash_per_reading_without_a_directory(client, make_user, settings):
    settings.LDAP_SERVER_URIS = []
    local = make_user("local")
    refusal(client, "local", "not the password")  # a real hash, averaged
    hash_cost = pace.password_cost(pace.HASH)
    assert refusal(client, "nobody", "not the password").not_before == hash_cost
    assert refusal(client, "nobody", "not the password,123456").not_before == 2 * hash_cost
    assert refusal(client, local.username, "not the password,123456").not_before == 0  # it took its own time


def test_api04_an_unknown_id_waits_one_bind_where_the_directory_decides(client, directory_person, settings):
    directory_person("alice")
    hash_cost = pace.password_cost(pace.HASH)
    for typed in ("not the password", "not the password,123456"):
        refusal(client, "alice", typed)  # one bind each, averaged apart from the hashes
    assert pace.password_cost(pace.HASH) == hash_cost
    bind_cost = pace.password_cost(pace.BIND)
    assert bind_cost != hash_cost
    assert refusal(client, "nobody", "not the password").not_before == bind_cost
    assert refusal(client, "nobody", "not the password,123456").not_before == bind_cost
    assert refusal(client, "nobody", f"{PASSWORD},123456").not_before == bind_cost
