"""The development console gateway: texts and calls printed where the server runs, never in production."""

import io
import re

import pytest
from django.utils import timezone

from devices import services
from devices.checks import check_phone_gateway
from devices.gateways import ConsoleGateway
from devices.models import Registration


@pytest.fixture
def printed(settings, monkeypatch):
    settings.PHONE_GATEWAY = "devices.gateways.ConsoleGateway"
    stream = io.StringIO()
    monkeypatch.setattr(ConsoleGateway, "stream", stream)
    return stream


def test_console_gateway_fails_the_deploy_check_like_the_outbox_only_one(settings):
    settings.PHONE_GATEWAY = "devices.gateways.ConsoleGateway"
    assert [e.id for e in check_phone_gateway(None)] == ["devices.E110"]


def test_a_landline_can_be_finished_with_the_code_the_console_prints(
    person, printed, django_capture_on_commit_callbacks
):
    registration = services.start_enrollment(person, kind="landline", verified_at=timezone.now())
    registration = services.set_phone_number(
        registration, phone_number="+16175550142", actor=person, verified_at=timezone.now()
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.send_phone_code(registration, channel="voice", actor=person, verified_at=timezone.now())
    out = printed.getvalue()
    assert "DEVELOPMENT ONLY, NOT SENT: voice call" in out and "+16175550142" in out
    spoken = re.search(r"-----\n(.*?)\n-----", out, re.S).group(1)
    code = "".join(re.findall(r"\d", spoken))[:6]
    registration = services.confirm_phone_code(registration, code=code, actor=person, verified_at=timezone.now())
    registration.refresh_from_db()
    assert registration.status == Registration.Status.ACTIVE


def test_console_gateway_prints_a_text_message(printed):
    message_id = ConsoleGateway().send_sms("+16175550123", "Your code is 123456.")
    assert message_id.startswith("dev-sms-")
    assert "DEVELOPMENT ONLY, NOT SENT: text message to +16175550123" in printed.getvalue()
    assert "Your code is 123456." in printed.getvalue()
