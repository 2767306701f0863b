"""Helpers and fixtures shared by the tests of a new phone for an app device and of a lost phone, the recent second factor a change needs, and only one's own devices."""

import io
import re

import pyotp
import pytest
from django_otp import DEVICE_ID_SESSION_KEY, devices_for_user
from PIL import Image, ImageDraw

from devices import totp
from devices.models import Registration
from testsupport import PASSWORD

from .browser import decode_qr, parse_otpauth
from .helpers import text

pytestmark = pytest.mark.django_db

MOBILE = "+16175550142"
LANDLINE = "+16175550199"
SIGN_IN = "/account/sign-in/"
SECOND_FACTOR = "/account/sign-in/second-factor/"


def new_phone_url(registration) -> str:
    return f"/devices/{registration.pk}/new-phone/"


def confirm_url(next_path: str) -> str:
    return "/account/sign-in/confirm/?next=" + next_path.replace("/", "%2F")


@pytest.fixture(autouse=True, name="_no_back_off")
def _no_back_off_fixture(settings):
    # django-otp's back-off (1, 2, 4... s after a failure) would refuse the next code unseen under a
    # frozen clock; the back-off itself is tested with the sign-in.
    settings.OTP_TOTP_THROTTLE_FACTOR = 0


@pytest.fixture(name="phone")
def phone_fixture(clock, person, enroll):
    """``person``'s one mobile phone with the app, time frozen."""
    return enroll(person, number=MOBILE)


@pytest.fixture(name="upgrading")
def upgrading_fixture(client, person, phone, sign_in):
    """``person`` signed in with the old phone; returns the client."""
    sign_in(client, person, phone.app_device)
    return client


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
