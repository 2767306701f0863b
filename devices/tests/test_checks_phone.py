"""Deploy checks for the phone gateway: production never runs on the development gateway or without credentials."""

from devices.checks import check_phone_gateway


def test_development_gateway_fails_the_deploy_check(settings):
    settings.PHONE_GATEWAY = "devices.gateways.OutboxOnlyGateway"
    assert [e.id for e in check_phone_gateway(None)] == ["devices.E110"]


def test_twilio_without_credentials_fails_the_deploy_check(settings):
    settings.PHONE_GATEWAY = "devices.gateways.twilio_from_settings"
    settings.TWILIO_ACCOUNT_SID = ""
    assert [e.id for e in check_phone_gateway(None)] == ["devices.E111"]
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, settings.TWILIO_FROM_NUMBER = "AC1", "t", "+15550100000"
    assert check_phone_gateway(None) == []
