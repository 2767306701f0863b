"""A small institution made through the services, as the site makes it: every state a report must count."""

import json
from types import SimpleNamespace

import pytest
from django.utils import timezone

from devices import services
from devices.models import BackupCodeDevice, Registration
from devices.services import security_keys
from devices.tests.authenticator import SoftwareKey
from devices.tests.fakes import RecordingGateway
from devices.webauthn import SessionChallenge
from helpdesk.tests.conftest import auditor, staff_member, superuser  # noqa: F401 (fixtures)
from identity import services as identity_services
from testsupport import fresh_code

RP_ID = "mfa.example.edu"
ORIGIN = "https://mfa.example.edu"
# A department and a name that a spreadsheet would run as formulas if written as they are (AC-05).
FORMULA_DEPARTMENT = '=HYPERLINK("http://evil.example","x")'
FORMULA_NAME = "+Frank"


@pytest.fixture(autouse=True)
def relying_party(settings):
    settings.WEBAUTHN_RP_ID = RP_ID
    settings.WEBAUTHN_ORIGINS = [ORIGIN]


@pytest.fixture
def recording_gateway(settings):
    settings.PHONE_GATEWAY = "devices.tests.fakes.RecordingGateway"
    RecordingGateway.delivered.clear()
    yield RecordingGateway
    RecordingGateway.delivered.clear()


def _now():
    return timezone.now()


def add_security_key(person, kind: str = Registration.Kind.SECURITY_KEY, *, synced: bool = False) -> Registration:
    """A security key, or (``kind`` passkey) a passkey, bound through the wizard's services; ``synced``: the
    authenticator says the credential may be synced and was (WA-04)."""
    key = SoftwareKey(
        rp_id=RP_ID,
        origin=ORIGIN,
        resident=kind == Registration.Kind.PASSKEY,
        backup_eligible=synced,
        backed_up=synced,
    )
    registration = services.start_enrollment(person, kind=kind, verified_at=_now())
    options, challenge = security_keys.start_security_key_registration(
        person, session_key="s", registration=registration
    )
    return security_keys.register_security_key(
        person,
        registration=registration,
        response_json=key.create(json.loads(options)),
        challenge=SessionChallenge(challenge.pk, "s"),
        label="Key",
        actor=person,
        verified_at=_now(),
    )


def add_landline(person, number: str, capture) -> Registration:
    registration = services.start_enrollment(person, kind=Registration.Kind.LANDLINE, verified_at=_now())
    registration = services.set_phone_number(registration, phone_number=number, actor=person, verified_at=_now())
    with capture(execute=True):
        services.send_phone_code(registration, channel="voice", actor=person, verified_at=_now())
    code = RecordingGateway.last_to(number).code
    return services.confirm_phone_code(registration, code=code, actor=person, verified_at=_now())


def reactivate(registration: Registration) -> Registration:
    person = registration.user
    registration = services.start_reactivation(registration, actor=person, verified_at=_now())
    code = fresh_code(registration.pending_app_device)
    return services.confirm_reactivation(registration, code=code, actor=person, verified_at=_now())


@pytest.fixture
def population(make_user, enroll, recording_gateway, django_capture_on_commit_callbacks, settings):
    """Ten people in three departments, each in a state the enrollment report has a column for."""
    approver = make_user("approver", is_staff=True)
    people = SimpleNamespace()

    def person(username, department, vpn=None, **names):
        someone = make_user(username, department=department, **names)
        if vpn == "approved":
            identity_services.approve_vpn_access(someone, actor=approver, reason="staff")
        elif vpn == "requested":
            identity_services.request_vpn_access(someone, reason="remote work")
        return someone

    # A mobile phone and a set of backup codes, one of them used up.
    people.alice = person("alice", "Cardiology", "approved", first_name="Alice", last_name="Ng")
    enroll(people.alice)
    codes = services.generate_backup_codes(people.alice, actor=people.alice, verified_at=_now())
    assert BackupCodeDevice.objects.get(user=people.alice, confirmed=True).verify_token(codes[0])
    # A tablet and a security key: the key is the strongest factor.
    people.bob = person("bob", "Cardiology", "approved", first_name="Bob", last_name="Ortiz")
    enroll(people.bob, kind="tablet", platform="android")
    add_security_key(people.bob)
    # A landline only: codes by voice call are the strongest (and only) factor.
    people.carol = person("carol", "Radiology", "requested", first_name="Carol", last_name="Diaz")
    add_landline(people.carol, "+16175550177", django_capture_on_commit_callbacks)
    # Reported the only phone lost: not enrolled, setup held until the help desk unlocks.
    people.dave = person("dave", "Radiology", "approved", first_name="Dave", last_name="Kim")
    lost = enroll(people.dave)
    services.report_lost(lost, actor=people.dave, verified_at=_now())
    # Two phones, one removed later; then locked out by wrong codes.
    people.erin = person("erin", "Cardiology", "approved", first_name="Erin", last_name="Roy")
    enroll(people.erin)
    second = enroll(people.erin)
    services.retire_registration(second, actor=people.erin, verified_at=_now())
    for _ in range(settings.LOCKOUT_THRESHOLD):
        identity_services.record_second_factor_failure(people.erin, factor="authenticator_app", ip=None)
    # Approved for the VPN but never enrolled; name and department would run as formulas in a spreadsheet.
    people.frank = person("frank", FORMULA_DEPARTMENT, "approved", first_name=FORMULA_NAME, last_name="Z")
    # Reactivated after a phone upgrade: still one phone in use.
    people.grace = person("grace", "Radiology", first_name="Grace", last_name="Hu")
    reactivate(enroll(people.grace))
    # Passkeys only (WA-04): one kept on this computer alone, one synced to the person's account.
    people.hana = person("hana", "Physics", first_name="Hana", last_name="Sato")
    add_security_key(people.hana, Registration.Kind.PASSKEY)
    people.ivan = person("ivan", "Physics", first_name="Ivan", last_name="Lund")
    add_security_key(people.ivan, Registration.Kind.PASSKEY, synced=True)
    people.approver = approver
    return people


@pytest.fixture
def auditor_client(client, auditor, sign_in):  # noqa: F811 (the fixture imported above)
    """An auditor signed in with password and second factor, as the admin requires."""
    sign_in(client, auditor)
    return client
