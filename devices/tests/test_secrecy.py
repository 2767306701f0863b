"""OTP-09: seeds, otpauth URIs, codes and link tokens never appear in the audit log, logs, admin pages,
task arguments or plaintext columns."""

import hashlib
import json
import logging
import re

import pytest
from celery.signals import task_prerun
from django.core import mail
from django.test import Client

from devices import selectors, services
from devices.models import ActivationLink, OutboundMessage
from identity.models import AuditEvent
from testsupport import fresh_code, totp_for

from .helpers import LINK_RE, email_link, pending_app_registration, secret_b32, text, walk_to_activate


def secret_forms(registration) -> list[str]:
    """The ways the pending secret could leak: base32 plain and grouped, hex, and the otpauth URI."""
    key = secret_b32(registration.app_device)
    return [
        key,
        selectors.manual_entry_secret(registration),
        registration.app_device.secret_bytes().hex(),
        selectors.otpauth_uri(registration),
        "otpauth",
    ]


def whole_enrollment(client, password, capture, clock):
    """Everything a person does while enrolling, wrong turns included. Returns (secrets, codes, token)."""
    registration = walk_to_activate(client)
    forms = secret_forms(registration)
    assert client.get(f"/enroll/{registration.pk}/activate/").status_code == 200
    assert client.get(f"/enroll/{registration.pk}/qr.svg").status_code == 200
    token = email_link(client, registration, capture)

    phone = Client()
    phone.post("/activate/", {"token": token})
    phone.post("/activate/", {"password": "not my password"})
    assert phone.post("/activate/", {"password": password}).status_code == 200
    phone.post("/activate/", {"token": token})
    assert phone.get("/activate/").status_code == 410

    device = registration.app_device
    valid = {totp_for(device).at(clock().timestamp() + 30 * d) for d in (-1, 0, 1)}
    wrong = next(code for code in ("000000", "111111", "222222") if code not in valid)
    client.post(f"/enroll/{registration.pk}/activate/", {"code": wrong})
    clock.tick(2)  # past django-otp's back-off
    code = fresh_code(device)
    assert client.post(f"/enroll/{registration.pk}/activate/", {"code": code}).status_code == 302
    client.get(f"/enroll/{registration.pk}/qr.svg")  # 404 now, and logged as such
    return forms, [code, wrong], token


def assert_absent(haystack: str, forms, codes=(), token=None):
    for form in forms:
        assert form not in haystack, f"{form[:12]}... leaked"
    for code in codes:
        assert not re.search(rf"(?<!\d){code}(?!\d)", haystack), f"code {code} leaked"
    if token:
        assert token not in haystack


@pytest.fixture
def enrolling_client(client, person, sign_in):
    sign_in(client, person)
    return client


def test_otp09_nothing_secret_in_audit_details(enrolling_client, password, clock, django_capture_on_commit_callbacks):
    forms, codes, token = whole_enrollment(enrolling_client, password, django_capture_on_commit_callbacks, clock)
    events = list(AuditEvent.objects.values("action", "details"))
    assert {"enrollment.secret_issued", "activation_link.sent", "activation_link.used", "device.bound"} <= {
        event["action"] for event in events
    }
    assert_absent(json.dumps(events, default=str), forms, codes, token)


def test_otp09_nothing_secret_in_logs(enrolling_client, password, clock, caplog, django_capture_on_commit_callbacks):
    for name in (None, "django", "celery", "devices", "identity"):
        caplog.set_level(logging.DEBUG, logger=name)
    forms, codes, token = whole_enrollment(enrolling_client, password, django_capture_on_commit_callbacks, clock)
    assert caplog.records, "expected some log output to check"
    everything = caplog.text + "\n".join(str(vars(record)) for record in caplog.records)
    assert_absent(everything, forms, codes, token)


def test_otp09_task_arguments_are_ids_only(enrolling_client, django_capture_on_commit_callbacks):
    registration = walk_to_activate(enrolling_client)
    seen = []

    def record(sender=None, args=None, kwargs=None, **_):
        seen.append((sender.name, args, kwargs))

    task_prerun.connect(record, weak=False)
    try:
        email_link(enrolling_client, registration, django_capture_on_commit_callbacks)
    finally:
        task_prerun.disconnect(record)
    message = OutboundMessage.objects.get()
    assert [(name, list(args), kwargs) for name, args, kwargs in seen] == [
        ("devices.tasks.send_outbound_message", [message.pk], {})
    ]


def test_otp09_link_token_stored_only_as_hash(enrolling_client, person, django_capture_on_commit_callbacks):
    registration = walk_to_activate(enrolling_client)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        enrolling_client.post(f"/enroll/{registration.pk}/email-link/")
    # Before the send: the queued body is encrypted, and no plaintext column holds the link.
    message = OutboundMessage.objects.get()
    link = ActivationLink.objects.get()
    plaintext = {
        field.name: getattr(message, field.attname)
        for field in OutboundMessage._meta.concrete_fields
        if field.name != "encrypted_body"
    }
    assert message.encrypted_body and message.holds_secret
    assert "/activate/" not in message.encrypted_body
    assert "/activate/" not in json.dumps(plaintext, default=str)

    for callback in callbacks:
        callback()
    token = LINK_RE.search(mail.outbox[-1].body).group(2)
    assert link.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in json.dumps(list(ActivationLink.objects.values()), default=str)
    message.refresh_from_db()
    assert message.status == OutboundMessage.Status.SENT
    assert message.encrypted_body == ""  # erased once sent
    assert token not in json.dumps(list(OutboundMessage.objects.values()), default=str)
    assert token not in mail.outbox[-1].subject


# --- The admin ---------------------------------------------------------------------------------------


@pytest.fixture
def admin_client(make_user, enroll, sign_in):
    admin = make_user("root", is_staff=True, is_superuser=True)
    enroll(admin)
    client = Client()
    sign_in(client, admin)
    return client


def test_otp09_admin_pages_show_no_secret(admin_client, make_user, django_capture_on_commit_callbacks):
    person = make_user("patient")
    # A number of its own: the admin's phone (the enroll fixture's first) is on record, and would need proving.
    registration = pending_app_registration(person, kind="mobile", number="+16175550142")
    forms = secret_forms(registration)
    with django_capture_on_commit_callbacks(execute=False):
        services.send_activation_link(registration, actor=person)  # stays queued: its body is still stored
    message = OutboundMessage.objects.get(template="activation_link")
    pages = [
        "/admin/devices/registration/",
        f"/admin/devices/registration/{registration.pk}/change/",
        "/admin/devices/outboundmessage/",
        f"/admin/devices/outboundmessage/{message.pk}/change/",
    ]
    for url in pages:
        response = admin_client.get(url)
        assert response.status_code == 200, url
        page = text(response)
        assert_absent(page, forms)
        assert message.encrypted_body not in page
        assert registration.app_device.encrypted_secret not in page
        assert "/activate/" not in page
        assert "+16175550142" not in page
    assert "p***@example.edu" in text(admin_client.get("/admin/devices/outboundmessage/"))


def test_otp09_raw_device_admin_is_unreachable(admin_client):
    assert admin_client.get("/admin/").status_code == 200
    for url in ("/admin/devices/authenticatorappdevice/", "/admin/devices/activationlink/"):
        assert admin_client.get(url).status_code == 404, url
