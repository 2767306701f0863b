"""Texts and calls asked for through the Auth API (``factor=sms``, ``phone``, ``auto``), as the unmodified
``duo_client`` asks for them against the live server: on SQLite as on PostgreSQL."""

from functools import partial

import pytest
from django.utils import timezone

from devices.models import OutboundMessage, PhoneDevice
from identity.models import AuditEvent

from .test_auth_api import fails

pytestmark = [pytest.mark.django_db(transaction=True)]


def codes_sent() -> list[tuple[str, str]]:
    """The texts and calls in the outbox (the emails beside them are not codes), oldest first."""
    return list(
        OutboundMessage.objects.filter(channel__in=["sms", "voice"]).order_by("pk").values_list("channel", "recipient")
    )


def test_sms_auto_texts_the_first_phone_that_takes_a_text_and_phone_auto_calls_the_first(duo, vpn_person, settings):
    """Duo's ``auto`` is the first device capable of the factor: a landline listed first is not texted in vain."""
    PhoneDevice.objects.create(user=vpn_person, name="Desk", number="+16175550111", can_text=False, confirmed=True)
    PhoneDevice.objects.create(user=vpn_person, name="Mobile", number="+16175550122", can_text=True, confirmed=True)
    assert duo().auth(factor="sms", username="vpnuser", device="auto")["status"] == "sms_sent"
    assert codes_sent() == [("sms", "+16175550122")]
    assert AuditEvent.objects.get(action="vpn.code_requested").details["sent"] is True
    settings.PHONE_RESEND_SECONDS = 0
    duo().auth(factor="phone", username="vpnuser", device="auto")
    assert codes_sent() == [("sms", "+16175550122"), ("voice", "+16175550111")]


def test_a_landline_named_for_a_text_is_refused_as_duo_refuses_a_device_not_capable_of_the_factor(duo, vpn_person):
    PhoneDevice.objects.create(user=vpn_person, name="Desk", number="+16175550111", can_text=False, confirmed=True)
    landline = next(d for d in duo().preauth(username="vpnuser")["devices"] if d["capabilities"] == ["phone"])
    error = fails(lambda: duo().auth(factor="sms", username="vpnuser", device=landline["device"]))
    assert error == {"status": 400, "stat": "FAIL", "code": 40002, "message": "Invalid request parameters: device"}
    assert codes_sent() == []
    refused = AuditEvent.objects.get(action="vpn.code_requested")
    assert refused.details["sent"] is False and refused.details["factor"] == "sms"
    # The same refusal once the person is locked (API-04): it says what the phone can take, nothing about them.
    vpn_person.locked_at = timezone.now()
    vpn_person.save(update_fields=["locked_at"])
    again = partial(duo().auth, factor="sms", username="vpnuser", device=landline["device"], ipaddr="192.0.2.7")
    assert fails(again) == error  # (another ipaddr: the same request in the same second would be a replay)
    # The landline still takes a call.
    vpn_person.locked_at = None
    vpn_person.save(update_fields=["locked_at"])
    duo().auth(factor="phone", username="vpnuser", device=landline["device"])
    assert codes_sent() == [("voice", "+16175550111")]


def test_an_empty_passcode_is_refused_never_a_call_nor_a_wrong_code(duo, vpn_person):
    number = str(vpn_person.registrations.get().phone_number)
    PhoneDevice.objects.create(user=vpn_person, name="Mobile", number=number, can_text=True, confirmed=True)
    refusal = {"status": 400, "stat": "FAIL", "code": 40002, "message": "Invalid request parameters: passcode"}
    for factor in ("auto", "passcode"):
        assert fails(lambda factor=factor: duo().auth(factor=factor, username="vpnuser", passcode="")) == refusal
    assert codes_sent() == []
    vpn_person.refresh_from_db()
    assert vpn_person.second_factor_failures == 0
    # Without a passcode, auto is a call.
    duo().auth(factor="auto", username="vpnuser")
    assert codes_sent() == [("voice", number)]
