"""The hot path's database work, pinned: one passcode check through the Auth API."""

import email.utils
import json

import pytest
from duo_client.client import Client as DuoClient
from duo_client.client import sign

from testsupport import fresh_code, wrong_code

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

# Through the view as in production (the same code path; no branch depends on the transaction around it): the
# integration (read once, then from the process's cache), the signature remembered (API-02), the person's row and
# their apps locked in one statement (OTP-01, OTP-04), then the web's own sign-in rule on those rows: a good code
# writes the app's row (step consumed, back-off reset) and appends the audit event; a wrong one writes the app's
# back-off and the person's failure count, then appends. The test runs inside a transaction, so the request's own
# transaction shows as a savepoint and its release (in production BEGIN and COMMIT).
GOOD_CODE_FIRST_REQUEST_QUERIES = 7
WRONG_CODE_CACHED_INTEGRATION_QUERIES = 7


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


def test_one_passcode_check_costs_a_fixed_number_of_queries(client, integration, vpn_person, assert_num_statements):
    device = vpn_person.registrations.get().app_device
    good, bad = fresh_code(device), wrong_code(device)
    with assert_num_statements(GOOD_CODE_FIRST_REQUEST_QUERIES) as captured:
        response = signed_auth(client, integration, {"factor": "passcode", "username": "vpnuser", "passcode": good})
    assert json.loads(response.content)["response"]["result"] == "allow", [q["sql"] for q in captured.captured_queries]
    with assert_num_statements(WRONG_CODE_CACHED_INTEGRATION_QUERIES):
        response = signed_auth(client, integration, {"factor": "passcode", "username": "vpnuser", "passcode": bad})
    assert json.loads(response.content)["response"]["result"] == "deny"
