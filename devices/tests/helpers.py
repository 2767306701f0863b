"""Helpers for the devices tests (the fixtures are in ``conftest.py``). Test data comes from the services and the real
views."""

import base64
import html
import io
import json
import re
from datetime import UTC, datetime

import pyotp
from django.core import mail
from django.test import Client
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY, devices_for_user
from PIL import Image, ImageDraw

from devices import services, totp
from devices.models import OutboundMessage, PhoneVerification, Registration
from devices.services import security_keys
from devices.webauthn import SessionChallenge
from identity.models import AuditEvent
from testsupport import PASSWORD, fresh_code

from .authenticator import SoftwareKey
from .browser import decode_qr, parse_otpauth

LINK_RE = re.compile(r"(https?://\S+?/activate/#([A-Za-z0-9_-]+))")


def step_start(offset_steps: int = 2, into_step: int = 5) -> datetime:
    """A moment ``into_step`` seconds into a 30 s step a little ahead of now.

    Frozen clocks start here: ahead of the real clock, so codes consumed before
    freezing stay in the past, and at a known place in the step.
    """
    now = int(timezone.now().timestamp())
    return datetime.fromtimestamp((now // 30 + offset_steps) * 30 + into_step, tz=UTC)


def text(response) -> str:
    return html.unescape(response.content.decode())


def secret_b32(device) -> str:
    return base64.b32encode(device.secret_bytes()).decode().rstrip("=")


_numbers = iter(range(1, 100_000))


def pending_app_registration(person, *, kind="tablet", platform="android", number=None, verified_at=None):
    """A pending registration whose app secret is issued: the state of the activation step."""
    # A fresh number ending in 23 each time, so none is "on record" (which would add the ownership check).
    number = number or f"+1617555{next(_numbers) % 100:02d}23"
    registration = services.start_enrollment(person, kind=kind, verified_at=verified_at or timezone.now())
    if kind == Registration.Kind.MOBILE:
        registration = services.set_phone_number(
            registration, phone_number=number, actor=person, verified_at=timezone.now()
        )
    registration = services.set_platform(registration, platform=platform, actor=person)
    return services.issue_app_secret(registration, actor=person, verified_at=timezone.now())


def add_app_device(person, **kwargs) -> Registration:
    """One more active app device, confirmed with a real code (as after a recent second factor)."""
    registration = pending_app_registration(person, **kwargs)
    return services.confirm_activation(
        registration, code=fresh_code(registration.app_device), actor=person, verified_at=timezone.now()
    )


def walk_to_activate(client, *, kind="mobile", number="(617) 555-0123", platform="iphone") -> Registration:
    """Go through the wizard in the views up to the activation page; return the pending registration."""
    response = client.post("/enroll/device-type/", {"kind": kind})
    assert response.status_code == 302, text(response)
    if kind == Registration.Kind.MOBILE:
        response = client.post(response["Location"], {"phone_number": number, "number_is_correct": "on"})
        assert response.status_code == 302, text(response)
    response = client.post(response["Location"], {"platform": platform})
    assert response.status_code == 302, text(response)
    response = client.post(response["Location"])
    assert response.status_code == 302 and response["Location"].endswith("/activate/"), response
    pk = int(response["Location"].split("/")[2])
    return Registration.objects.select_related("app_device", "user").get(pk=pk)


def email_link(client, registration, capture_on_commit) -> str:
    """Ask for an activation link through the view, send it on commit, return the token from the email."""
    sent_before = len(mail.outbox)
    with capture_on_commit(execute=True):
        response = client.post(f"/enroll/{registration.pk}/email-link/")
    assert response.status_code == 302
    assert len(mail.outbox) == sent_before + 1, "no email was sent"
    return LINK_RE.search(mail.outbox[-1].body).group(2)


def events(action: str, **filters):
    return AuditEvent.objects.filter(action=action, **filters)


# --- proving a phone number, numbers on record ---------------------------------------------------------------

NUMBER = "+16175550188"


MASKED = "+1********88"


OTHER_NUMBER = "+16175550177"


CODE_TTL_SECONDS = 10 * 60


def verify_url(registration) -> str:
    return f"/enroll/{registration.pk}/verify-phone/"


def enter_number(client, kind: str, number: str):
    """Choose ``kind`` and type ``number`` in the wizard; returns (registration, response of the phone step)."""
    response = client.post("/enroll/device-type/", {"kind": kind})
    assert response.status_code == 302, text(response)
    pk = int(response["Location"].split("/")[2])
    response = client.post(f"/enroll/{pk}/phone/", {"phone_number": number, "number_is_correct": "on"})
    return Registration.objects.get(pk=pk), response


def ask_for_code(client, url: str, channel: str, sending):
    with sending():
        return client.post(url, {"action": "send", "channel": channel}, follow=True)


def enter_code(client, url: str, code: str):
    return client.post(url, {"action": "confirm", "code": code})


def a_wrong_code(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def nothing_queued():
    """No code was made or queued: no challenge row and no text or call (emailed notices are not codes)."""
    texts_and_calls = OutboundMessage.objects.exclude(channel=OutboundMessage.Channel.EMAIL)
    return not texts_and_calls.exists() and not PhoneVerification.objects.exists()


def put_on_record(other, number: str, history: str) -> None:
    """Give ``other`` a mobile with ``number``: in use, retired long ago, or a setup left half-way."""
    if history == "pending":
        registration = services.start_enrollment(other, kind="mobile", verified_at=None)
        services.set_phone_number(registration, phone_number=number, actor=other, verified_at=timezone.now())
        return
    registration = services.start_enrollment(other, kind="mobile", verified_at=None)
    registration = services.set_phone_number(registration, phone_number=number, actor=other, verified_at=timezone.now())
    registration = services.set_platform(registration, platform="android", actor=other)
    registration = services.issue_app_secret(registration, actor=other, verified_at=timezone.now())
    registration = services.confirm_activation(
        registration, code=fresh_code(registration.app_device), actor=other, verified_at=timezone.now()
    )
    if history == "retired":
        add_app_device(other, kind="tablet")
        services.retire_registration(registration, actor=other, verified_at=timezone.now())


def finish_app_steps(client, registration) -> Registration:
    """Platform, install and activate in the views, with a real code from the new app."""
    url = f"/enroll/{registration.pk}/"
    assert client.post(url + "platform/", {"platform": "android"})["Location"] == url + "install/"
    assert client.post(url + "install/")["Location"] == url + "activate/"
    registration = Registration.objects.select_related("app_device").get(pk=registration.pk)
    response = client.post(url + "activate/", {"code": fresh_code(registration.app_device)})
    assert response["Location"] == url + "done/", text(response)
    registration.refresh_from_db()
    return registration


def second_factor_page(person) -> str:
    """The sign-in page a person sees after the password, in a browser of its own."""
    browser = Client()
    assert browser.post("/account/sign-in/", {"username": person.username, "password": PASSWORD})["Location"] == (
        "/account/sign-in/second-factor/"
    )
    return text(browser.get("/account/sign-in/second-factor/"))


def pending_landline(person, number: str = NUMBER) -> Registration:
    registration = services.start_enrollment(person, kind="landline", verified_at=timezone.now())
    return services.set_phone_number(registration, phone_number=number, actor=person, verified_at=timezone.now())


# --- a new phone for an app device, a lost phone ---------------------------------------------------------------

MOBILE = "+16175550142"


LANDLINE = "+16175550199"


SIGN_IN = "/account/sign-in/"


SECOND_FACTOR = "/account/sign-in/second-factor/"


def new_phone_url(registration) -> str:
    return f"/devices/{registration.pk}/new-phone/"


def confirm_url(next_path: str) -> str:
    return "/account/sign-in/confirm/?next=" + next_path.replace("/", "%2F")


def qr_png(svg: bytes) -> bytes:
    """Draw the served SVG's modules (``M x,y H x2 V y2 H x z`` rectangles) into a PNG for the decoder."""
    doc = svg.decode()
    width, height = map(int, re.search(r'viewBox="0 0 (\d+) (\d+)"', doc).group(1, 2))
    scale = 8
    image = Image.new("L", (width * scale, height * scale), 255)
    draw = ImageDraw.Draw(image)
    path = re.search(r'<path d="([^"]+)"', doc).group(1)
    squares = re.findall(r"M(\d+),(\d+)H(\d+)V(\d+)H\d+z", path)
    assert squares and len("".join(f"M{x},{y}H{h}V{v}H{x}z" for x, y, h, v in squares)) == len(path)
    for x, y, right, bottom in (map(int, square) for square in squares):
        draw.rectangle([x * scale, y * scale, right * scale - 1, bottom * scale - 1], fill=0)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def qr_secret(client, registration) -> str:
    """The secret in the QR code the page offers, as an app scanning it would read it."""
    response = client.get(f"/enroll/{registration.pk}/qr.svg")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    return parse_otpauth(decode_qr(qr_png(response.content)))["secret"]


def page_secret(response) -> str:
    """The secret typed by hand from the page ("Cannot scan? Type this key")."""
    match = re.search(r'<code class="secret">([A-Z2-7 ]+)</code>', text(response))
    assert match, "the page shows no key to type"
    return match.group(1).replace(" ", "")


def start(client, registration, **extra):
    return client.post(new_phone_url(registration), {"action": "start", **extra})


def confirm(client, registration, code):
    return client.post(new_phone_url(registration), {"action": "confirm", "code": code})


def sign_in_with(client, person, device, code):
    """Password, then ``code`` for ``device``; returns the second-factor response."""
    response = client.post(SIGN_IN, {"username": person.username, "password": PASSWORD})
    assert response["Location"] == SECOND_FACTOR
    return client.post(SECOND_FACTOR, {"device": device.persistent_id, "code": code})


def signed_in_with(client) -> str | None:
    return client.session.get(DEVICE_ID_SESSION_KEY)


def offered_at_sign_in(person) -> set[str]:
    return {device.persistent_id for device in devices_for_user(person, confirmed=True)}


def code_not_made_by(device, other: pyotp.TOTP, clock) -> str:
    """The current code of ``other``, at a moment when ``device`` (another secret) accepts nothing like it."""
    while True:
        code = other.now()
        step = totp.current_step()
        if code not in {totp.code_at(device.secret_bytes(), s) for s in range(step - 1, step + 2)}:
            return code
        clock.tick(30)


def started(registration) -> Registration:
    registration.refresh_from_db()
    assert registration.status == Registration.Status.REACTIVATING
    return registration


# --- security keys and passkeys -------------------------------------------------------------------------------

RP_ID = "mfa.example.edu"


ORIGIN = "https://mfa.example.edu"


IP = "192.0.2.10"


def new_key(**kwargs) -> SoftwareKey:
    return SoftwareKey(rp_id=RP_ID, origin=ORIGIN, **kwargs)


def pending_key(person) -> Registration:
    return services.start_enrollment(person, kind=Registration.Kind.SECURITY_KEY, verified_at=timezone.now())


def registration_challenge(person, *, session="session-a", registration=None):
    options, challenge = security_keys.start_security_key_registration(
        person, session_key=session, registration=registration
    )
    return json.loads(options), SessionChallenge(challenge.pk, session)


def register(
    person, key, *, session="session-a", label="Blue key", actor=None, session_device=None, **create_kwargs
) -> Registration:
    """The wizard's step, as the views drive it: a pending registration, options, the key's answer."""
    registration = pending_key(person)
    options, claim = registration_challenge(person, session=session, registration=registration)
    return security_keys.register_security_key(
        person,
        registration=registration,
        response_json=key.create(options, **create_kwargs),
        challenge=claim,
        label=label,
        actor=actor or person,
        ip=IP,
        verified_at=timezone.now(),
        session_device=session_device,
    )


def sign_in_challenge(person, *, session="session-b"):
    options, challenge = security_keys.start_security_key_sign_in(person, session_key=session)
    return json.loads(options), SessionChallenge(challenge.pk, session)


def answer(person, response_json: str, claim: SessionChallenge) -> str:
    outcome, _ = security_keys.verify_security_key(person, response_json=response_json, challenge=claim, ip=IP)
    return outcome


def sign_in(person, key, *, session="session-b", **get_kwargs) -> str:
    options, claim = sign_in_challenge(person, session=session)
    return answer(person, key.get(options, **get_kwargs), claim)


def sign_in_with_key(client, person, key) -> None:
    """Password, then the key, through the views the browser's script posts to."""
    client.post("/account/sign-in/", {"username": person.username, "password": PASSWORD})
    options = client.post("/security-key/sign-in/options/", {"purpose": "sign_in"}).json()
    response = client.post("/security-key/sign-in/", {"purpose": "sign_in", "credential": key.get(options)})
    assert response.status_code == 302, response.content[:800]


def failures(person) -> int:
    person.refresh_from_db()
    return person.second_factor_failures
