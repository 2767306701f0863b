"""The hot path's database work, pinned: one passcode check through the Auth API."""

import email.utils
import json

import pytest
from duo_client.client import Client as DuoClient
from duo_client.client import sign

from testsupport import fresh_code, wrong_code

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

# Integration, the signature remembered (API-02), the person, their devices that take a typed code (one query
# per device model: app, phone, backup codes, help-desk bypass codes), the person's row locked (OTP-01), the device locked and
# consumed (OTP-04, in a savepoint; the locked row is the only read), and the audit append (its lock, the chain's last row, the insert, inside a
# savepoint); a wrong code also writes the failure count. The test runs inside a
# transaction, so the request's own transaction shows as a savepoint too (2 of these; in production BEGIN and
# COMMIT). The web sign-in took 32 for one code before its restructuring.
CORRECT_CODE_QUERIES = 19
WRONG_CODE_QUERIES = 20


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
    with django_assert_num_queries(CORRECT_CODE_QUERIES) as captured:
        response = signed_auth(client, integration, {"factor": "passcode", "username": "vpnuser", "passcode": good})
    assert json.loads(response.content)["response"]["result"] == "allow", [q["sql"] for q in captured.captured_queries]
    with django_assert_num_queries(WRONG_CODE_QUERIES):
        response = signed_auth(client, integration, {"factor": "passcode", "username": "vpnuser", "passcode": bad})
    assert json.loads(response.content)["response"]["result"] == "deny"
