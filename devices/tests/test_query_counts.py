"""What "My devices" costs in database queries, pinned so that a change adding reads is noticed."""

import pytest

pytestmark = pytest.mark.postgres

MY_DEVICES_QUERIES = 5


def test_my_devices_costs_a_fixed_number_of_queries(signed_in_client, enroll, enrolled_user, assert_max_num_statements):
    enroll(enrolled_user, kind="tablet", platform="android")  # two devices: the count must not grow per device
    with assert_max_num_statements(MY_DEVICES_QUERIES):
        response = signed_in_client.get("/devices/")
    assert response.status_code == 200
    assert response.content.decode().count("I got a new") == 2
