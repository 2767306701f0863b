"""Selectors fetch what a page needs in a fixed number of queries, however many devices a person has."""

from testsupport import CapturedStatements


def _queries_for_my_devices(client) -> int:
    with CapturedStatements() as captured:
        assert client.get("/devices/").status_code == 200
    return len(captured)


def test_my_devices_query_count_does_not_grow_with_devices(client, user, enroll, sign_in):
    enroll(user)
    sign_in(client, user)
    with_one = _queries_for_my_devices(client)
    for kind in ("tablet", "mobile", "mobile"):
        enroll(user, kind=kind)
    assert _queries_for_my_devices(client) == with_one
