"""What the sign-in steps cost in database queries, pinned so that a change adding reads is noticed.

Measured on PostgreSQL. The second-factor POST is 10 queries: the session, the person and the device read (and
again under their locks), the code consumed, the audit event (one statement: the chain's lock, its head and the
insert), the session's new key (SES-01, one rename), the last sign-in time and the session's save. The password POST
is 7.
"""

import pytest
from django_otp import DEVICE_ID_SESSION_KEY, devices_for_user

from testsupport import fresh_code, post_code, post_password

pytestmark = pytest.mark.postgres

PASSWORD_POST_QUERIES = 7
SECOND_FACTOR_POST_QUERIES = 10


def test_the_password_step_costs_a_fixed_number_of_queries(client, enrolled_user, password, assert_num_statements):
    with assert_num_statements(PASSWORD_POST_QUERIES):
        response = post_password(client, enrolled_user, password)
    assert response.status_code == 302
    assert response["Location"].endswith("/second-factor/")


def test_a_good_code_costs_a_fixed_number_of_queries(client, enrolled_user, password, assert_num_statements):
    post_password(client, enrolled_user, password)
    device = next(iter(devices_for_user(enrolled_user, confirmed=True)))
    code = fresh_code(device)
    with assert_num_statements(SECOND_FACTOR_POST_QUERIES):
        response = post_code(client, device, code)
    assert response.status_code == 302
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
