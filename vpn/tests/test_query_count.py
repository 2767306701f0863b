"""The hot path's database work, pinned: one passcode check through the Auth API."""

import email.utils
import json

import pytest
from duo_client.client import Client as DuoClient
from duo_client.client import sign

from testsupport import fresh_code, wrong_code

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

# The integration (read once, then from the process's cache), the signature remembered (API-02), the person's row
# and their apps locked in one statement (OTP-01, OTP-04), and the outcome written in one statement (the step
# consumed or the failure counted, the person's failure count, and the audit event appended under the chain's lock).
# The test runs inside a transaction, so the request's own transaction shows as a savepoint and its release (in
# production BEGIN and COMMIT).
FIRST_REQUEST_QUERIES = 6
CACHED_INTEGRATION_QUERIES = 5


def signed_auth(client, integration, params):
    body = DuoClient.canon_json(params)
    date = email.utils.formatdate()
    authorization = sign(
        integration.integration_key, integration.secret, "POST", "testserver", "/auth/v2/auth", date, 5, {}, body=body
    )
    return client.post(
        "/auth/v2/auth",
        data=body,
        content_type="application/json",
        HTTP_AUTHORIZATION=authorization,
        HTTP_DATE=date,
    )


def test_one_passcode_check_costs_a_fixed_number_of_queries(client, integration, vpn_person, django_assert_num_queries):
    device = vpn_person.registrations.get().app_device
    good, bad = fresh_code(device), wrong_code(device)
    with django_assert_num_queries(FIRST_REQUEST_QUERIES) as captured:
        response = signed_auth(client, integration, {"factor": "passcode", "username": "vpnuser", "passcode": good})
    assert json.loads(response.content)["response"]["result"] == "allow", [q["sql"] for q in captured.captured_queries]
    with django_assert_num_queries(CACHED_INTEGRATION_QUERIES):
        response = signed_auth(client, integration, {"factor": "passcode", "username": "vpnuser", "passcode": bad})
    assert json.loads(response.content)["response"]["result"] == "deny"


@pytest.mark.parametrize("outcome", ["success", "failure"])
def test_the_outcome_is_written_before_the_audit_chain_lock_is_taken(outcome):
    """Every check waits for the chain's lock, so the row updates must not run while it is held: the plan evaluates
    them in a one-time filter above the append (left alone, PostgreSQL would finish them after it)."""
    from django.db import connection
    from django.utils import timezone

    from identity import audit
    from vpn.services import passcode

    params = {"step": 1, "now": timezone.now(), "device": 1, "devices": [1], "person": 1}
    params |= audit.append_params("test.plan", details={})
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (COSTS OFF) " + passcode._statement(outcome), params)
        plan = [row[0].strip() for row in cursor.fetchall()]
    assert plan[0] == "Result"
    assert plan[1].startswith("One-Time Filter")
    assert plan[-1].startswith("->  Function Scan on identity_audit_append")
