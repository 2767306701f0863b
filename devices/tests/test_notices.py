"""BND-03: every change to how a person signs in emails them a notice through the outbox, and is audited.

Each case sets the scene first, then takes the one action and looks at what
that action alone queued: exactly one email notice to the person, holding no
secret, and its audit event. A person without an email address gets no notice
and the action still works (REL-10).
"""

import json
import re
from dataclasses import dataclass, field

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from devices import crypto, kinds, services
from devices.models import OutboundMessage, Registration
from devices.services import security_keys
from devices.tests.fakes import RecordingGateway
from devices.webauthn import SessionChallenge
from identity import services as identity_services
from identity.models import AuditEvent
from testsupport import fresh_code, wrong_code

from .authenticator import SoftwareKey
from .helpers import add_app_device, secret_b32

pytestmark = pytest.mark.django_db

RP_ID = "mfa.example.edu"
ORIGIN = "https://mfa.example.edu"
NUMBER = "+16175550171"
LANDLINE = "+16175550172"


@pytest.fixture(autouse=True)
def _setting(settings, recording_gateway):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    settings.WEBAUTHN_RP_ID = RP_ID
    settings.WEBAUTHN_ORIGINS = [ORIGIN]


@dataclass
class Scene:
    person: object
    phone: Registration
    staff: object
    secrets: set = field(default_factory=set)  # every code, key or token made on the way, to look for in notices
    state: dict = field(default_factory=dict)


def _sent_code(number: str) -> str:
    return RecordingGateway.last_to(number).code


def _prove_number(registration, person, channel, number, capture):
    with capture(execute=True):
        services.send_phone_code(registration, channel=channel, actor=person, verified_at=timezone.now())
    return services.confirm_phone_code(registration, code=_sent_code(number), actor=person, verified_at=timezone.now())


# --- The actions: (event, audit action, setup, action) ---------------------------------------------------------


def add_app(scene, capture):
    add_app_device(scene.person, kind="tablet")


def add_landline(scene, capture):
    registration = services.start_enrollment(scene.person, kind="landline", verified_at=timezone.now())
    registration = services.set_phone_number(
        registration, phone_number=LANDLINE, actor=scene.person, verified_at=timezone.now()
    )
    registration = _prove_number(registration, scene.person, "voice", LANDLINE, capture)
    assert registration.status == Registration.Status.ACTIVE


def turn_on_texts(scene, capture):
    registration = _prove_number(scene.phone, scene.person, "sms", NUMBER, capture)
    assert registration.phone_device.confirmed


def add_mobile_with_number_on_record(scene, capture):
    """A second phone on a number already on record: the wizard proves the number, then binds app and texts."""
    registration = services.start_enrollment(scene.person, kind="mobile", verified_at=timezone.now())
    registration = services.set_phone_number(
        registration, phone_number=NUMBER, actor=scene.person, verified_at=timezone.now()
    )
    assert kinds.phone_check_required(registration)
    registration = _prove_number(registration, scene.person, "sms", NUMBER, capture)
    registration = services.set_platform(registration, platform="android", actor=scene.person)
    registration = services.issue_app_secret(registration, actor=scene.person, verified_at=timezone.now())
    scene.secrets.add(secret_b32(registration.app_device))
    services.confirm_activation(
        registration, code=fresh_code(registration.app_device), actor=scene.person, verified_at=timezone.now()
    )


def add_security_key(scene, capture):
    pending = services.start_enrollment(scene.person, kind="security_key", verified_at=timezone.now())
    options, challenge = security_keys.start_security_key_registration(
        scene.person, session_key="desk", registration=pending
    )
    key = SoftwareKey(rp_id=RP_ID, origin=ORIGIN)
    security_keys.register_security_key(
        scene.person,
        registration=pending,
        response_json=key.create(json.loads(options)),
        challenge=SessionChallenge(challenge.pk, "desk"),
        label="Blue key",
        actor=scene.person,
        verified_at=timezone.now(),
    )


def start_reactivation(scene, capture):
    registration = services.start_reactivation(scene.phone, actor=scene.person, verified_at=timezone.now())
    scene.state["new"] = registration.pending_app_device
    scene.secrets.add(secret_b32(registration.pending_app_device))


def reactivate(scene, capture):
    services.confirm_reactivation(
        scene.phone, code=fresh_code(scene.state["new"]), actor=scene.person, verified_at=timezone.now()
    )


def start_reactivation_old_phone_lost(scene, capture):
    registration = services.start_reactivation(
        scene.phone, actor=scene.person, verified_at=timezone.now(), old_phone_lost=True
    )
    scene.secrets.add(secret_b32(registration.pending_app_device))


def report_lost(scene, capture):
    services.report_lost(scene.phone, actor=scene.person, verified_at=timezone.now())


def add_tablet(scene, capture):
    scene.state["tablet"] = add_app_device(scene.person, kind="tablet")
    scene.secrets.add(secret_b32(scene.state["tablet"].app_device))


def remove_tablet(scene, capture):
    services.retire_registration(scene.state["tablet"], actor=scene.person, verified_at=timezone.now())


def generate_backup_codes(scene, capture):
    codes = services.generate_backup_codes(scene.person, actor=scene.person, verified_at=timezone.now())
    scene.secrets.update(codes)
    scene.secrets.update(code.replace("-", "") for code in codes)


def fail_nine_times(scene, capture):
    device = scene.phone.app_device
    for _ in range(django_settings.LOCKOUT_THRESHOLD - 1):
        identity_services.verify_second_factor(scene.person, device=device, code=wrong_code(device), ip=None)


def fail_once_more(scene, capture):
    device = scene.phone.app_device
    outcome = identity_services.verify_second_factor(scene.person, device=device, code=wrong_code(device), ip=None)
    assert outcome == identity_services.SecondFactorOutcome.LOCKED


def lock(scene, capture):
    fail_nine_times(scene, capture)
    fail_once_more(scene, capture)


def unlock(scene, capture):
    identity_services.unlock_user(scene.person, actor=scene.staff, reason="identity checked, INC-4")


def nothing(scene, capture):
    pass


CASES = {
    "app added": ("device.bound", "device.bound", nothing, add_app),
    "landline added, proven by a call": ("device.bound", "device.bound", nothing, add_landline),
    "texts and calls turned on": ("device.bound", "device.bound", nothing, turn_on_texts),
    "mobile with app and texts at once": ("device.bound", "device.bound", nothing, add_mobile_with_number_on_record),
    "security key added": ("device.bound", "device.bound", nothing, add_security_key),
    "moved to a new phone": ("device.reactivated", "device.reactivated", start_reactivation, reactivate),
    "reported lost": ("device.reported_lost", "device.reported_lost", nothing, report_lost),
    "old phone lost, new one coming": (
        "device.reported_lost",
        "device.reactivation_started",
        nothing,
        start_reactivation_old_phone_lost,
    ),
    "removed": ("device.retired", "device.retired", add_tablet, remove_tablet),
    "backup codes generated": ("backup_codes.generated", "backup_codes.generated", nothing, generate_backup_codes),
    "account locked": ("account.locked", "account.locked", fail_nine_times, fail_once_more),
    "account unlocked": ("account.unlocked", "account.unlocked", lock, unlock),
}


def make_scene(make_user, enroll, *, email) -> Scene:
    person = make_user("asmith", email=email, first_name="Ann", last_name="Smith")
    phone = enroll(person, number=NUMBER)
    scene = Scene(person=person, phone=phone, staff=make_user("helpdesk1", is_staff=True))
    scene.secrets.add(secret_b32(phone.app_device))
    return scene


def secrets_seen(scene: Scene) -> set[str]:
    """Everything secret made so far: app keys, codes sent by text or call, backup codes."""
    return scene.secrets | {d.code for d in RecordingGateway.delivered}


@pytest.mark.parametrize("case", CASES)
def test_bnd03_each_change_queues_exactly_one_notice_without_secrets(
    case, clock, make_user, enroll, django_capture_on_commit_callbacks
):
    event, action, setup, act = CASES[case]
    scene = make_scene(make_user, enroll, email="ann.smith@example.edu")
    setup(scene, django_capture_on_commit_callbacks)
    emails_before = set(OutboundMessage.objects.filter(channel="email").values_list("pk", flat=True))
    audited_before = AuditEvent.objects.filter(action=action, subject=scene.person).count()

    act(scene, django_capture_on_commit_callbacks)

    new_emails = OutboundMessage.objects.filter(channel="email").exclude(pk__in=emails_before)
    (notice,) = new_emails
    assert notice.template == f"notice:{event}"
    assert notice.user == scene.person and notice.recipient == "ann.smith@example.edu"
    assert not notice.holds_secret and notice.expires_at is None
    assert services.NOTICES[event].lower() in notice.subject
    body = crypto.decrypt(notice.encrypted_body).decode()
    assert services.NOTICES[event] in body
    assert django_settings.HELP_DESK_CONTACT in body and "If this was not you" in body
    for secret in secrets_seen(scene):
        assert secret not in body and secret.lower() not in body.lower(), secret
    assert not re.search(r"\d{6}", body) and "otpauth" not in body and "/activate/" not in body
    assert AuditEvent.objects.filter(action=action, subject=scene.person).count() > audited_before


@pytest.mark.parametrize("case", CASES)
def test_rel10_without_an_email_address_the_change_still_happens_without_a_notice(
    case, clock, make_user, enroll, django_capture_on_commit_callbacks
):
    event, action, setup, act = CASES[case]
    scene = make_scene(make_user, enroll, email=None)
    setup(scene, django_capture_on_commit_callbacks)
    audited_before = AuditEvent.objects.filter(action=action, subject=scene.person).count()

    act(scene, django_capture_on_commit_callbacks)

    assert AuditEvent.objects.filter(action=action, subject=scene.person).count() > audited_before
    assert not OutboundMessage.objects.filter(channel="email").exists()


def test_bnd03_the_mobile_bound_with_its_number_is_two_factors_and_one_notice(
    clock, make_user, enroll, django_capture_on_commit_callbacks
):
    scene = make_scene(make_user, enroll, email="ann.smith@example.edu")
    add_mobile_with_number_on_record(scene, django_capture_on_commit_callbacks)
    newest = AuditEvent.objects.filter(action="device.bound").order_by("-sequence")[:2]
    assert sorted(e.details["factor"] for e in newest) == ["authenticator_app", "phone"]
    assert len({e.details["registration"] for e in newest}) == 1
    assert OutboundMessage.objects.filter(template="notice:device.bound").count() == 2  # this one and the first phone


def test_bnd03_the_notice_is_emailed_once_the_change_commits(
    client, person, enroll, sign_in, mailoutbox, clock, django_capture_on_commit_callbacks
):
    phone = enroll(person)
    tablet = add_app_device(person, kind="tablet")
    sign_in(client, person, phone.app_device)
    mailoutbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/devices/{tablet.pk}/remove/")

    assert response.status_code == 302
    (email,) = mailoutbox
    assert email.to == [person.email]
    assert email.subject.endswith(services.NOTICES["device.retired"].lower())
    assert f"{services.NOTICES['device.retired']}: {tablet.display_name}." in email.body
    assert f"{django_settings.SITE_URL}/devices/" in email.body
    assert OutboundMessage.objects.get(template="notice:device.retired").status == OutboundMessage.Status.SENT


def test_bnd03_a_notice_goes_to_the_person_not_to_the_staff_member_acting(clock, make_user, enroll):
    scene = make_scene(make_user, enroll, email="ann.smith@example.edu")
    lock(scene, None)
    unlock(scene, None)
    notice = OutboundMessage.objects.get(template="notice:account.unlocked")
    assert notice.recipient == "ann.smith@example.edu" and notice.user == scene.person
    assert not OutboundMessage.objects.filter(user=scene.staff).exists()


def test_bnd03_nothing_is_notified_for_what_changed_nothing(clock, make_user, enroll):
    """A refused or repeated request is no change: no notice (people learn to ignore noise)."""
    scene = make_scene(make_user, enroll, email="ann.smith@example.edu")
    before = OutboundMessage.objects.count()
    identity_services.unlock_user(scene.person, actor=scene.staff, reason="not locked")
    with pytest.raises(ValidationError):  # the last device cannot be removed (BND-02)
        services.retire_registration(scene.phone, actor=scene.person, verified_at=timezone.now())
    registration = services.start_reactivation(scene.phone, actor=scene.person, verified_at=timezone.now())
    services.end_reactivation(registration, actor=scene.person, reason="cancelled")
    assert OutboundMessage.objects.count() == before


def test_rel10_the_change_commits_while_email_is_down(
    client, person, enroll, sign_in, clock, settings, mailoutbox, django_capture_on_commit_callbacks
):
    phone = enroll(person)
    tablet = add_app_device(person, kind="tablet")
    sign_in(client, person, phone.app_device)
    mailoutbox.clear()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 1  # nothing listens there

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/devices/{tablet.pk}/lost/")

    assert response.status_code == 302 and response["Location"] == "/devices/"
    tablet.refresh_from_db()
    assert tablet.status == Registration.Status.RETIRED
    assert AuditEvent.objects.filter(action="device.reported_lost").count() == 1
    notice = OutboundMessage.objects.get(template="notice:device.reported_lost")
    assert notice.status in (OutboundMessage.Status.QUEUED, OutboundMessage.Status.FAILED) and notice.sent_at is None
    assert notice.attempts >= 1 and notice.last_error
    assert mailoutbox == []
