"""The logs (docs/operations.md, "Logs"): one line per request and per task, JSON on request, the request's id from
the response header to the audit log and the worker, nothing secret in them (OTP-09), and floods kept short."""

import base64
import contextlib
import copy
import io
import json
import logging
import logging.config
import re
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from freezegun import freeze_time

from config.log_filters import RepeatLimit, mask
from config.wsgi import application
from devices import services as device_services
from devices.models import OutboundMessage
from devices.tests.fakes import RecordingGateway
from identity import audit
from identity import services as identity_services
from identity.models import AuditEvent
from testsupport import PASSWORD, SECOND_FACTOR, SIGN_IN, fresh_code, wait_for
from vpn import services as vpn_services
from vpn.tests.test_wsgi import call, signed_passcode

pytestmark = pytest.mark.postgres

MOBILE = "+16175550188"
OFFERED = "lb-7f3a9c2e-0001"


@pytest.fixture
def json_log():
    """Everything logged during the test, at DEBUG, as the site's LOGGING writes it with LOG_FORMAT=json."""
    stream = io.StringIO()
    config = copy.deepcopy(django_settings.LOGGING)
    config["handlers"]["console"].update(formatter="json", stream=stream)
    config["root"]["level"] = "DEBUG"
    config["loggers"]["django"] = {"level": "DEBUG"}  # Django's own configuration stops it at INFO
    logging.config.dictConfig(config)
    try:
        yield stream
    finally:
        logging.config.dictConfig(django_settings.LOGGING)


def lines(stream) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def request_lines(stream) -> list[dict]:
    return [line for line in lines(stream) if line["logger"] == "request"]


# --- The request's id -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_well_formed_request_id_is_kept_in_the_header_and_the_json_line(client, json_log):
    response = client.get(SIGN_IN, HTTP_X_REQUEST_ID=OFFERED)

    assert response["X-Request-ID"] == OFFERED
    (line,) = request_lines(json_log)
    assert line["request_id"] == OFFERED
    assert (line["method"], line["route"], line["status"], line["level"]) == ("GET", "/account/sign-in/", 200, "INFO")
    assert isinstance(line["duration_ms"], float) and line["time"]


@pytest.mark.django_db
@pytest.mark.parametrize("offered", ["", "short", "x" * 65, "abc def ghi", "<script>alert(1)</script>", "id\r\nX: y"])
def test_an_ill_formed_request_id_is_replaced_by_a_fresh_one(client, json_log, offered):
    response = client.get(SIGN_IN, HTTP_X_REQUEST_ID=offered)

    fresh = response["X-Request-ID"]
    assert fresh != offered and re.fullmatch(r"[0-9a-f]{32}", fresh)
    assert request_lines(json_log)[0]["request_id"] == fresh


@pytest.mark.django_db
def test_the_line_names_the_route_never_the_path_with_its_token(client, json_log):
    client.get("/activate/s3cr3t-t0ken-in-the-path/?token=also-secret")

    assert "s3cr3t-t0ken" not in json_log.getvalue() and "also-secret" not in json_log.getvalue()
    assert request_lines(json_log)[0]["route"].startswith("/")


@pytest.mark.django_db
def test_a_sign_in_writes_its_request_id_into_the_audit_event_and_the_chain_still_verifies(
    client, enrolled_user, sign_in
):
    client.defaults["HTTP_X_REQUEST_ID"] = OFFERED

    sign_in(client, enrolled_user)

    event = AuditEvent.objects.filter(action="signin.second_factor_ok").get()
    assert event.details["request_id"] == OFFERED
    assert audit.verify_chain() is None


@pytest.mark.django_db
def test_an_audit_event_outside_any_request_has_no_request_id(enrolled_user):
    assert "request_id" not in AuditEvent.objects.order_by("-sequence").first().details


@pytest.mark.django_db
def test_the_auth_api_answers_with_the_request_id_and_logs_one_line_for_it(make_user, enroll, json_log):
    person = make_user("vpnuser")
    enroll(person)
    identity_services.approve_vpn_access(person, actor=make_user("helpdesk1", is_staff=True), reason="ticket 1")
    integration, integration.secret = vpn_services.create_integration(name="Cisco ASA", actor=None)
    body, headers = signed_passcode(integration, fresh_code(person.registrations.get().app_device))

    status, answer_headers, content = call(
        application, "POST", "/auth/v2/auth", body=body, headers={**headers, "X-Request-ID": OFFERED}
    )

    assert status == 200 and json.loads(content)["response"]["result"] == "allow"
    assert answer_headers["X-Request-ID"] == OFFERED
    (line,) = request_lines(json_log)
    assert (line["route"], line["status"], line["request_id"]) == ("/auth/v2/auth", 200, OFFERED)
    event = AuditEvent.objects.order_by("-sequence").first()
    assert (event.action, event.details["request_id"]) == ("signin.second_factor_ok", OFFERED), event.details


def turn_on_text_messages(person, sending) -> object:
    """A mobile with the app, and codes by text turned on through the recording gateway (in-process)."""
    registration = person.registrations.get()
    with sending():
        device_services.send_phone_code(registration, channel="sms", actor=person, verified_at=timezone.now())
    device_services.confirm_phone_code(
        registration, code=RecordingGateway.last_to(MOBILE).code, actor=person, verified_at=timezone.now()
    )
    registration.refresh_from_db()
    return registration.phone_device


def test_the_request_id_follows_a_text_into_the_worker_and_its_log_line(
    client, make_user, enroll, start_worker, settings
):
    settings.PHONE_GATEWAY = "devices.tests.fakes.RecordingGateway"
    settings.PHONE_RESEND_SECONDS = 0
    person = make_user("asmith")
    enroll(person, number=MOBILE)
    phone = turn_on_text_messages(person, contextlib.nullcontext)  # eager, on commit: no worker yet
    worker = start_worker(
        "--pool=solo",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel=INFO",
        LOG_FORMAT="json",
        PHONE_GATEWAY="devices.gateways.OutboxOnlyGateway",
    )
    client.defaults["HTTP_X_REQUEST_ID"] = OFFERED
    client.post(SIGN_IN, {"username": person.username, "password": PASSWORD})

    response = client.post(SECOND_FACTOR, {"send": f"{phone.persistent_id}|sms"})

    assert response["X-Request-ID"] == OFFERED
    wait_for(lambda: OutboundMessage.objects.filter(status=OutboundMessage.Status.SENT, channel="sms").count() == 2)

    def task_lines():
        found = []
        for text in worker.log.read_text().splitlines():
            if text.startswith("{"):
                line = json.loads(text)
                if line["logger"] == "task" and line.get("request_id") == OFFERED:
                    found.append(line)
        return found

    (line,) = wait_for(task_lines)
    assert line["state"] == "SUCCESS" and line["task"].startswith("devices.")
    assert "signin.code_sent" in AuditEvent.objects.filter(details__request_id=OFFERED).values_list("action", flat=True)


# --- OTP-09: nothing secret in the logs ---------------------------------------------------------------


@pytest.mark.django_db
def test_otp_09_a_sign_in_a_text_and_an_auth_api_check_log_no_code_secret_token_or_number(
    client, make_user, enroll, settings, json_log, django_capture_on_commit_callbacks
):
    def sending():
        return django_capture_on_commit_callbacks(execute=True)

    settings.PHONE_GATEWAY = "devices.tests.fakes.RecordingGateway"
    settings.DEBUG = True  # SQL statements and their parameters are logged too
    RecordingGateway.delivered.clear()
    person = make_user("vpnuser")
    with freeze_time(timezone.now()) as clock:
        enroll(person, number=MOBILE)
        phone = turn_on_text_messages(person, sending)
        app = person.registrations.get().app_device
        identity_services.approve_vpn_access(person, actor=make_user("helpdesk1", is_staff=True), reason="ticket 1")
        integration, integration.secret = vpn_services.create_integration(name="Cisco ASA", actor=None)
        clock.tick(timedelta(seconds=61))

        # The web: password, a text with a code, the code.
        client.post(SIGN_IN, {"username": person.username, "password": PASSWORD})
        with sending():
            client.post(SECOND_FACTOR, {"send": f"{phone.persistent_id}|sms"})
        texted = RecordingGateway.last_to(MOBILE).code
        assert client.post(SECOND_FACTOR, {"device": phone.persistent_id, "code": texted}).status_code == 302

        # The VPN: the app's code through the Auth API, as the production WSGI application serves it.
        app_code = fresh_code(app)
        body, headers = signed_passcode(integration, app_code)
        status, _, content = call(application, "POST", "/auth/v2/auth", body=body, headers=headers)
        assert json.loads(content)["response"]["result"] == "allow"

    logged = json_log.getvalue()
    assert request_lines(json_log) and "SELECT" in logged, "the requests and the SQL were logged"
    codes = {delivered.code for delivered in RecordingGateway.delivered} | {app_code}
    seed = app.secret_bytes()
    secrets = {PASSWORD, integration.secret, seed.hex(), base64.b32encode(seed).decode().rstrip("="), *codes}
    secrets |= {headers["Authorization"].split()[-1], client.cookies["sessionid"].value}
    for secret in filter(None, secrets):
        assert secret not in logged
    assert MOBILE not in logged and MOBILE[2:] not in logged and "617-555-0188" not in logged


def test_otp_09_the_safety_net_masks_what_slipped_into_a_line(json_log):
    log = logging.getLogger("devices.careless")

    log.warning("texted %s with code=%s (token: %s)", MOBILE, "123456", "abcdef0123")
    log.info("called (617) 555-0188", extra={"auth_token": "t" * 32, "number": "617-555-0188"})
    log.info("from 192.168.100.200 at 2026-12-07 08:34:45 for 1234 ms")  # not a phone number

    first, second, third = lines(json_log)
    assert first["message"] == "texted [phone ...88] with code=[masked] (token: [masked])"
    assert second["message"] == "called [phone ...88]" and second["auth_token"] == "[masked]"
    assert second["number"] == "[phone ...88]"
    assert third["message"] == "from 192.168.100.200 at 2026-12-07 08:34:45 for 1234 ms"
    assert "123456" not in json_log.getvalue() and "abcdef0123" not in json_log.getvalue()


def test_mask_keeps_ordinary_text():
    assert mask("outbound message 12345 failed after 3 attempts") == "outbound message 12345 failed after 3 attempts"
    assert mask('{"passcode": "654321"}') == '{"passcode": "[masked]"}'


# --- A flood of refusals ------------------------------------------------------------------------------


def test_a_flood_of_the_same_warning_is_cut_to_the_limit_then_counted(json_log):
    limiter = RepeatLimit(limit=3, seconds=60)
    handler = logging.getLogger().handlers[0]
    handler.filters = [limiter if isinstance(f, RepeatLimit) else f for f in handler.filters]
    log = logging.getLogger("vpn.views")

    with freeze_time("2026-12-07 09:00:00") as clock:
        for n in range(50):
            log.warning("refused %s: wrong signature", f"10.0.0.{n}")
        log.warning("a different warning")
        log.info("an ordinary line")
        log.info("an ordinary line")
        clock.tick(61)
        log.warning("refused %s: wrong signature", "10.0.0.99")

    messages = [line["message"] for line in lines(json_log)]
    assert messages == [
        "refused 10.0.0.0: wrong signature",
        "refused 10.0.0.1: wrong signature",
        "refused 10.0.0.2: wrong signature",
        "a different warning",
        "an ordinary line",
        "an ordinary line",
        "refused 10.0.0.99: wrong signature (47 more like this not logged)",
    ]
    assert lines(json_log)[-1]["suppressed"] == 47
