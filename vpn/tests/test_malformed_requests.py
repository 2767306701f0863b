"""API-10: requests no VPN sends are answered 400, 401 or 413 in Duo's error shape before any work, and nothing is
logged as an error: a stranger's junk is not the server's fault."""

import http.client
import json
import logging

import pytest

from identity.models import AuditEvent
from testsupport import fresh_code
from vpn.tests.test_wsgi import call, signed_passcode

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def errors(caplog):
    """The records logged at ERROR or above while the test runs, by any thread (the live server's too)."""
    caplog.set_level(logging.INFO)
    return lambda: [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]


def duo_shaped(content: bytes) -> dict:
    data = json.loads(content)
    assert set(data) == {"stat", "code", "message"} and data["stat"] == "FAIL", data
    assert isinstance(data["code"], int) and data["message"], data
    return data


@pytest.fixture
def production(api_application, settings):
    """The Auth API's process as production runs it (config.settings_api's middleware and URLs), HTTPS required."""
    settings.SECURE_SSL_REDIRECT = True
    return api_application()


def test_api_10_a_wrong_host_is_refused_400_before_any_work(production, integration, errors):
    before = AuditEvent.objects.count()
    for secure in (True, False):  # over plain HTTP too, where the HTTPS redirect would read the Host first
        status, headers, content = call(
            production, "GET", "/auth/v2/check", headers={"Host": "evil.example"}, secure=secure
        )
        assert status == 400 and headers["Content-Type"] == "application/json"
        assert duo_shaped(content)["code"] == 40003
    assert errors() == []
    assert AuditEvent.objects.count() == before


def test_api_10_a_large_body_without_credentials_is_refused_413_unread(production, errors):
    status, _, content = call(
        production,
        "POST",
        "/auth/v2/preauth",
        body=b"x" * 3_000_000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        secure=True,
    )
    assert status == 413 and duo_shaped(content)["code"] == 41301
    assert errors() == []
    assert not AuditEvent.objects.exists()


def test_api_10_a_large_body_sent_to_the_live_server_is_refused_413(live_server, errors):
    body = b"x" * 3_000_000
    host, port = live_server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("POST", "/auth/v2/auth", body=body, headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    assert response.status == 413 and duo_shaped(response.read())["code"] == 41301
    connection.close()
    assert errors() == []
    assert not AuditEvent.objects.exists()


def test_api_10_a_body_that_is_not_utf8_is_refused_400(production, errors):
    status, _, content = call(
        production,
        "POST",
        "/auth/v2/preauth",
        body=b"username=\xff\xfe",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        secure=True,
    )
    assert status == 400 and duo_shaped(content)["code"] == 40003
    # More query parameters than Django parses (DATA_UPLOAD_MAX_NUMBER_FIELDS) is the same.
    query = "&".join(f"p{n}=1" for n in range(1001))
    status, _, content = call(production, "GET", f"/auth/v2/check?{query}", secure=True)
    assert status == 400 and duo_shaped(content)["message"] == "Bad request: too many parameters"
    assert errors() == []


def test_api_10_no_credentials_is_401_and_audited_without_an_error(production, errors):
    status, _, content = call(production, "GET", "/auth/v2/check", secure=True)
    assert status == 401 and duo_shaped(content)["code"] == 40101
    assert errors() == []
    assert AuditEvent.objects.filter(action="vpn.api_refused", details__reason="no credentials").exists()


def test_api_10_a_nul_in_a_signed_user_name_is_refused_400(duo, vpn_person, errors):
    refusals = [
        lambda: duo().preauth(username="vpn\x00user"),
        lambda: duo().auth(factor="passcode", username="vpn\x00user", passcode="123456"),
        lambda: duo(sig_version=2).preauth(username="vpn\x00user"),  # a form body
        lambda: duo().auth(factor="passcode", username="vpnuser", passcode="12\x0034"),
        lambda: duo().preauth(username="vpn\ud800user"),  # half a surrogate pair, escaped in JSON
    ]
    for call_api in refusals:
        with pytest.raises(RuntimeError) as refused:
            call_api()
        assert refused.value.status == 400
        data = refused.value.data if isinstance(refused.value.data, dict) else json.loads(refused.value.data)
        assert (data["stat"], data["code"]) == ("FAIL", 40002), data
    assert errors() == []
    assert not AuditEvent.objects.filter(action__startswith="signin.").exists()
    vpn_person.refresh_from_db()
    assert vpn_person.second_factor_failures == 0


def test_api_10_a_device_that_is_not_ascii_is_refused_400_whoever_is_named(duo, vpn_person, errors):
    """A person with a phone, and nobody: the same refusal, before anyone is looked up, and no error logged."""
    from devices.models import PhoneDevice

    number = str(vpn_person.registrations.get().phone_number)
    PhoneDevice.objects.create(user=vpn_person, name="Mobile", number=number, can_text=True, confirmed=True)
    answers = []
    for username in ("vpnuser", "nobody"):
        for factor in ("sms", "phone"):
            with pytest.raises(RuntimeError) as refused:
                duo().auth(factor=factor, username=username, device="DPé")
            data = refused.value.data if isinstance(refused.value.data, dict) else json.loads(refused.value.data)
            answers.append((refused.value.status, data))
    assert answers == [(400, {"stat": "FAIL", "code": 40002, "message": "Invalid request parameters: device"})] * 4
    assert errors() == []
    assert not AuditEvent.objects.filter(action="vpn.code_requested").exists()


def test_api_10_a_null_passcode_is_a_missing_parameter(duo, vpn_person, errors):
    params = {"factor": "passcode", "username": "vpnuser", "passcode": None}
    response, data = duo().api_call("POST", "/auth/v2/auth", params)
    assert response.status == 400
    assert duo_shaped(data) == {
        "stat": "FAIL",
        "code": 40001,
        "message": "Missing required request parameters: passcode",
    }
    vpn_person.refresh_from_db()
    assert vpn_person.second_factor_failures == 0  # not the passcode "None", counted as a wrong code
    assert not AuditEvent.objects.filter(action="signin.second_factor_failed").exists()
    # A value that is not a string is refused, and a good code still works after it all.
    response, data = duo().api_call("POST", "/auth/v2/auth", {**params, "passcode": ["1", "2"]})
    assert response.status == 400 and duo_shaped(data)["code"] == 40002
    code = fresh_code(vpn_person.registrations.get().app_device)
    assert duo().auth(factor="passcode", username="vpnuser", passcode=code)["result"] == "allow"
    assert errors() == []


def test_api_10_the_production_application_answers_a_signed_request_after_the_gate(production, integration, vpn_person):
    body, headers = signed_passcode(integration, fresh_code(vpn_person.registrations.get().app_device))
    status, _, content = call(production, "POST", "/auth/v2/auth", body=body, headers=headers, secure=True)
    assert status == 200 and json.loads(content)["response"]["result"] == "allow"
