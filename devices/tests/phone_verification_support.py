"""Helpers and fixtures shared by the tests of proving a phone number and of numbers never texted or called, turning on texts and calls, and another person's registration."""

import pytest
from django.test import Client
from django.utils import timezone

from devices import services
from devices.models import OutboundMessage, PhoneVerification, Registration
from testsupport import PASSWORD, fresh_code

from .helpers import add_app_device, text

pytestmark = pytest.mark.django_db

NUMBER = "+16175550188"
MASKED = "+1********88"
OTHER_NUMBER = "+16175550177"
CODE_TTL_SECONDS = 10 * 60


@pytest.fixture(name="wizard")
def wizard_fixture(client, person, sign_in):
    sign_in(client, person)
    return client


@pytest.fixture(name="other")
def other_fixture(make_user):
    return make_user("bjones", first_name="Bob", last_name="Jones")


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
