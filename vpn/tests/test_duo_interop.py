"""What a VPN admin and a Duo client meet: the hostname to enter, a call answered as Duo answers one, and a passcode
box offered wherever a passcode can work. All through the unmodified ``duo_client`` against the live server."""

import contextlib
import re
import time
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
    # auto without a passcode calls too (Duo's auto picks a call when there is no push), answered the same.
    assert duo().auth(factor="auto", username="vpnuser") == answer
    assert OutboundMessage.objects.filter(channel="voice", recipient=number).count() == 3
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
    assert entry["device"].startswith("DP")
    assert entry["display_name"] == "A code from the help desk or your backup codes"
    allowed = duo().auth(factor="passcode", username="visitor", passcode=code, device=entry["device"])
    assert allowed["result"] == "allow"


def test_a_person_with_only_a_landline_is_offered_a_passcode_for_the_code_the_call_reads(duo, make_user, approve):
    person = make_user("landline")
    approve(person)
    PhoneDevice.objects.create(user=person, name="Desk", number="+16175550199", can_text=False, confirmed=True)
    devices = duo().preauth(username="landline")["devices"]
    assert [(d["type"], d["capabilities"]) for d in devices] == [("phone", ["phone"]), ("token", ["mobile_otp"])]
    assert devices[0]["device"] != devices[1]["device"]
    assert devices[1]["display_name"] == "A code texted or read to you"
    # The passcode entry's id comes back with the code the call read; a wrong one is a wrong code for the person.
    answer = duo().auth(factor="passcode", username="landline", passcode="123456", device=devices[1]["device"])
    assert answer == {"result": "deny", "status": "deny", "status_msg": services.DENIED}
    person.refresh_from_db()
    assert person.second_factor_failures == 1


def test_an_app_and_backup_codes_are_listed_once_each(duo, vpn_person):
    from devices import services as device_services

    device_services.generate_backup_codes(vpn_person, actor=vpn_person, verified_at=timezone.now())
    devices = duo().preauth(username="vpnuser")["devices"]
    assert [(d["type"], d["capabilities"]) for d in devices] == [("phone", ["mobile_otp"]), ("token", ["mobile_otp"])]


# --- The Auth API's certificate (docs/vpn.md) ----------------------------------------------------------------------


def _private_ca(tmp_path):
    """A private root and a certificate for ``localhost`` it signed, as PEM files: (root, chain, key)."""
    from datetime import UTC, datetime, timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)

    def build(subject, issuer, public_key, signing_key, *, ca: bool):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        return builder.sign(signing_key, hashes.SHA256())

    root_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root = build(
        "Example Medical School Root CA", "Example Medical School Root CA", root_key.public_key(), root_key, ca=True
    )
    leaf = build("localhost", "Example Medical School Root CA", leaf_key.public_key(), root_key, ca=False)
    paths = tmp_path / "root.pem", tmp_path / "chain.pem", tmp_path / "key.pem"
    paths[0].write_bytes(root.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + paths[0].read_bytes())
    paths[2].write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@pytest.fixture
def https_front(live_server, tmp_path):
    """HTTPS in front of the live server, with a certificate from a private CA (as a TLS proxy would terminate it);
    yields (port, the root's PEM file)."""
    import socket
    import ssl
    import threading

    root, chain, key = _private_ca(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain, key)
    backend = int(live_server.url.rsplit(":", 1)[1])
    listener = socket.create_server(("127.0.0.1", 0))

    def pump(source, target):
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)

    def serve():
        while True:
            try:
                plain, _ = listener.accept()
            except OSError:
                return  # closed: the test is over
            try:
                client = context.wrap_socket(plain, server_side=True)
            except (ssl.SSLError, OSError):
                plain.close()  # the client refused our certificate
                continue
            upstream = socket.create_connection(("127.0.0.1", backend))
            threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, client), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield listener.getsockname()[1], root
    listener.close()


def test_duo_client_trusts_only_its_bundled_roots_unless_pointed_at_another_ca(https_front, integration, monkeypatch):
    import ssl

    port, root = https_front

    def client(**kwargs):
        return duo_client.Auth(
            ikey=integration.integration_key, skey=integration.secret, host="localhost", port=port, **kwargs
        )

    # Out of the box duo_client pins its own bundle (no Let's Encrypt, no private CA): the certificate is refused.
    with pytest.raises(ssl.SSLCertVerificationError):
        client().check()
    # Pointed at the CA that issued ours, it connects and verifies the certificate and the host name.
    assert client(ca_certs=str(root)).check()["time"]
    # Or told to use the system's trust store, here made to hold that root (a second later: the same check within
    # the second would be a replay, API-02).
    time.sleep(1.1)
    monkeypatch.setenv("SSL_CERT_FILE", str(root))
    assert client(disable_ca_pinning=True).check()["time"]
