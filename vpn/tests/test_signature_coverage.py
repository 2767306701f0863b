"""What a signature covers: every parameter the endpoint acts on must be under it (API-01)."""

import json
from email.utils import formatdate
from urllib.parse import urlencode

import pytest
from duo_client.client import sign

from identity.models import AuditEvent

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_api01_a_v2_signature_does_not_cover_a_json_body(client, integration, vpn_person):
    """Signature v2 covers form parameters only; a JSON body under a v2 signature of no parameters is refused."""
    date = formatdate()
    authorization = sign(
        integration.integration_key, integration.secret, "POST", "testserver", "/auth/v2/preauth", date, 2, {}
    )
    response = client.post(
        "/auth/v2/preauth",
        data=json.dumps({"username": vpn_person.username}),
        content_type="application/json",
        HTTP_AUTHORIZATION=authorization,
        HTTP_DATE=date,
    )
    assert response.status_code == 401
    assert response.json()["code"] == 40103
    assert not AuditEvent.objects.filter(action="vpn.preauth").exists()


def test_api01_a_v2_signature_still_covers_a_form_body(client, integration, vpn_person):
    date = formatdate()
    params = {"username": vpn_person.username}
    authorization = sign(
        integration.integration_key,
        integration.secret,
        "POST",
        "testserver",
        "/auth/v2/preauth",
        date,
        2,
        {"username": [vpn_person.username]},
    )
    response = client.post(
        "/auth/v2/preauth",
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=authorization,
        HTTP_DATE=date,
    )
    assert response.status_code == 200, response.content
    assert response.json()["response"]["result"] == "auth"
