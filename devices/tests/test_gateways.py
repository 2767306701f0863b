"""The Twilio gateway against a local stand-in for Twilio's REST API (the real library makes real requests)."""

import socket
from datetime import UTC, datetime, timedelta

import pytest

from devices.gateways import (
    PermanentGatewayError,
    TransientGatewayError,
    TwilioGateway,
    UnknownOutcomeError,
    spoken_twiml,
)
from devices.tests.twilio_stub import TwilioStub

SID = "AC" + "0" * 32


@pytest.fixture
def stub():
    server = TwilioStub().start()
    yield server
    server.stop()


def gateway_for(url: str, *, timeout: float = 5) -> TwilioGateway:
    return TwilioGateway(
        account_sid=SID, auth_token="t" * 32, from_number="+16175550100", api_base_url=url, timeout=timeout
    )


def test_sms_reaches_the_provider_with_number_and_text(stub):
    sid = gateway_for(stub.base_url).send_sms("+16175550123", "123456 is your code")
    assert [(a.kind, a.to, a.from_, a.body, a.sid) for a in stub.accepted] == [
        ("sms", "+16175550123", "+16175550100", "123456 is your code", sid)
    ]


def test_call_reads_the_text_twice_with_a_pause(stub):
    gateway_for(stub.base_url).place_call("+16175550123", "Your code is: 1, 2, 3, 4, 5, 6.")
    (call,) = stub.accepted
    assert call.kind == "voice"
    assert call.body.count("Your code is: 1, 2, 3, 4, 5, 6.") == 2
    assert "<Pause" in call.body


def test_twiml_escapes_text():
    assert "&lt;Hangup/&gt;" in spoken_twiml("<Hangup/>")


@pytest.mark.parametrize("status", [429, 500, 503])
def test_rel04_busy_or_failing_provider_is_transient(stub, status):
    stub.script(status)
    with pytest.raises(TransientGatewayError):
        gateway_for(stub.base_url).send_sms("+16175550123", "x")
    assert stub.accepted == []


@pytest.mark.parametrize("status", [400, 401])
def test_rel04_refusals_are_permanent(stub, status):
    stub.script(status)
    with pytest.raises(PermanentGatewayError):
        gateway_for(stub.base_url).place_call("+16175550123", "x")


def test_rel04_unreachable_provider_is_transient():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransientGatewayError):
        gateway_for(f"http://127.0.0.1:{port}").send_sms("+16175550123", "x")


@pytest.mark.parametrize("kind", ["sms", "voice"])
def test_rel04_an_answer_slower_than_the_timeout_is_an_unknown_outcome_and_found_at_the_provider(stub, kind):
    stub.state.answer_delay[kind] = 2
    gateway = gateway_for(stub.base_url, timeout=0.5)
    send = gateway.send_sms if kind == "sms" else gateway.place_call
    before = datetime.now(UTC) - timedelta(seconds=1)

    with pytest.raises(UnknownOutcomeError):
        send("+16175550123", "123456 is your code")

    (accepted,) = stub.accepted  # the provider has it: sending it again would give the code twice
    assert gateway.find_sent(kind, "+16175550123", "123456 is your code", before) == accepted.sid
    assert gateway.find_sent(kind, "+16175550199", "123456 is your code", before) is None
    later = datetime.now(UTC) + timedelta(days=1)
    assert gateway.find_sent(kind, "+16175550123", "123456 is your code", later) is None
    # A text is matched by its body too (it holds the code); a call by recipient and time only.
    other_code = gateway.find_sent(kind, "+16175550123", "654321 is your code", before)
    assert other_code == (None if kind == "sms" else accepted.sid)


def test_rel04_a_provider_that_cannot_be_asked_is_a_transient_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransientGatewayError):
        gateway_for(f"http://127.0.0.1:{port}").find_sent("sms", "+16175550123", "x", datetime.now(UTC))
