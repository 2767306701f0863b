"""What a VPN admin and a Duo client meet: the hostname to enter, a call answered as Duo answers one, and a passcode
box offered wherever a passcode can work. All through the unmodified ``duo_client`` against the live server."""

import re
from io import StringIO

import duo_client
import pytest
from django.core.management import call_command
from django.utils import timezone

from devices.bypass_codes import issue_bypass_codes
from devices.models import OutboundMessage, PhoneDevice
from vpn import services

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_create_vpn_integration_prints_the_api_hostname_a_duo_client_connects_with(live_server, settings):
    settings.SITE_URL = live_server.url
    out = StringIO()
    call_command("create_vpn_integration", "Fortinet", stdout=out)
    printed = out.getvalue()
    host = re.search(r"API hostname: +(\S+)\n", printed).group(1)
    port = int(re.search(r"API port: +(\d+) ", printed).group(1))
    ikey = re.search(r"integration key: (DI[A-Z0-9]{18})\n", printed).group(1)
    skey = re.search(r"secret key: +(\S+)\n", printed).group(1)
    assert (host, port) == ("localhost", int(live_server.url.rsplit(":", 1)[1]))
    assert "not https" in printed  # the live server is plain HTTP: the command says a VPN will not connect to it
    client = duo_client.Auth(ikey=ikey, skey=skey, host=host, port=port, ca_certs="HTTP")
    assert client.check()["time"]


def test_the_phone_factor_is_answered_as_duo_answers_a_call(duo, vpn_person, settings):
    number = str(vpn_person.registrations.get().phone_number)
    PhoneDevice.objects.create(user=vpn_person, name="Mobile", number=number, can_text=True, confirmed=True)
    answer = duo().auth(factor="phone", username="vpnuser", device="auto")
    # Duo answers a call with its outcome, allow or deny; ours reads a code out and confirms nobody: deny, and the
    # words say what to do next. Never "sms_sent", which is Duo's answer to a text.
    assert answer == {"result": "deny", "status": "deny", "status_msg": services.CALLING}
    assert OutboundMessage.objects.filter(channel="voice", recipient=number).count() == 1
    assert duo().auth(factor="phone", username="nobody", device="auto") == answer  # API-04
    # Asynchronously too: auth_status reports the same outcome.
    settings.PHONE_RESEND_SECONDS = 0
    txid = duo().auth(factor="phone", username="vpnuser", device="auto", async_txn=True)["txid"]
    status = duo().auth_status(txid)
    assert (status["success"], status["waiting"], status["status"]) == (False, False, "deny")
    text = duo().auth(factor="sms", username="vpnuser", device="auto")
    assert (text["result"], text["status"]) == ("deny", "sms_sent")


def test_a_person_whose_only_way_in_is_a_bypass_code_is_offered_a_passcode(duo, make_user, approve, staff):
    person = make_user("visitor")
    approve(person)
    # A different ipaddr for each preauth: the same request twice in one second would be a replay (API-02).
    assert duo().preauth(username="visitor", ipaddr="10.0.0.1")["result"] == "enroll"
    [code] = issue_bypass_codes(person, actor=staff, count=1, valid_minutes=15)
    answer = duo().preauth(username="visitor", ipaddr="10.0.0.2")
    assert answer["result"] == "auth"
    [entry] = answer["devices"]
    assert entry["type"] == "token" and entry["capabilities"] == ["mobile_otp"]
    assert entry["device"].startswith("DP") and entry["display_name"]
    allowed = duo().auth(factor="passcode", username="visitor", passcode=code, device=entry["device"])
    assert allowed["result"] == "allow"


def test_an_app_and_backup_codes_are_listed_once_each(duo, vpn_person):
    from devices import services as device_services

    device_services.generate_backup_codes(vpn_person, actor=vpn_person, verified_at=timezone.now())
    devices = duo().preauth(username="vpnuser")["devices"]
    assert [(d["type"], d["capabilities"]) for d in devices] == [("phone", ["mobile_otp"]), ("token", ["mobile_otp"])]
