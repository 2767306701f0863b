"""The directory's mobile number in the wizard's phone step: offered masked ("Is this your number?"), filled in on
our side when the person takes it, then confirmed and proven exactly as a typed number is."""

import re

import pytest

from devices import errors
from devices.models import Registration

from .helpers import MASKED, NUMBER, add_app_device, ask_for_code, enter_code, events, text, verify_url

pytestmark = pytest.mark.django_db

OFFER = "Is this your number?"


def start(client, kind="mobile") -> Registration:
    response = client.post("/enroll/device-type/", {"kind": kind})
    assert response.status_code == 302, text(response)
    return Registration.objects.get(pk=int(response["Location"].split("/")[2]))


def phone_url(registration) -> str:
    return f"/enroll/{registration.pk}/phone/"


def with_directory_mobile(person, number=NUMBER):
    person.directory_mobile = number
    person.save(update_fields=["directory_mobile"])
    return person


def test_the_phone_step_offers_the_directory_mobile_masked(wizard, person):
    with_directory_mobile(person)
    registration = start(wizard)
    page = text(wizard.get(phone_url(registration)))
    assert OFFER in page and MASKED in page
    # Shown masked only: a password alone (a first device's setup) never reveals the number.
    assert NUMBER not in page and "555" not in page
    assert "Use this number" in page


def test_no_offer_without_a_directory_mobile(wizard, person):
    registration = start(wizard)
    page = text(wizard.get(phone_url(registration)))
    assert OFFER not in page
    # Asking for the offer without one shows the ordinary field.
    page = text(wizard.get(phone_url(registration) + "?use=directory"))
    assert 'name="phone_number"' in page and "use_directory_mobile" not in page


def test_no_offer_when_the_number_is_already_one_of_their_devices(client, person, sign_in):
    with_directory_mobile(person)
    add_app_device(person, kind="mobile", number=NUMBER)
    sign_in(client, person)
    registration = start(client, kind="landline")
    page = text(client.get(phone_url(registration)))
    assert OFFER not in page and MASKED not in page


def test_using_the_offer_fills_the_number_and_still_asks_to_confirm_it(wizard, person):
    with_directory_mobile(person)
    registration = start(wizard)
    page = text(wizard.get(phone_url(registration) + "?use=directory"))
    assert MASKED in page and NUMBER not in page
    assert 'name="use_directory_mobile"' in page and 'name="phone_number"' not in page
    assert "Enter a different number" in page

    response = wizard.post(phone_url(registration), {"use_directory_mobile": "1"})
    assert response.status_code == 200
    assert "Tick the box to confirm the number is correct." in text(response)
    registration.refresh_from_db()
    assert not registration.phone_number and not events("enrollment.phone_entered").exists()

    response = wizard.post(phone_url(registration), {"use_directory_mobile": "1", "number_is_correct": "on"})
    assert response["Location"] == f"/enroll/{registration.pk}/platform/"
    registration.refresh_from_db()
    assert str(registration.phone_number) == NUMBER and registration.phone_verified_at is None
    assert events("enrollment.phone_entered").get().details["phone"] == MASKED


def test_a_typed_number_wins_when_the_offer_is_not_taken(wizard, person):
    with_directory_mobile(person)
    registration = start(wizard)
    response = wizard.post(phone_url(registration), {"phone_number": "+44 20 7946 0958", "number_is_correct": "on"})
    assert response.status_code == 302
    registration.refresh_from_db()
    assert str(registration.phone_number) == "+442079460958"


def test_the_offer_cannot_be_taken_for_a_number_the_person_does_not_have(wizard, person, make_user):
    # Someone else's directory number is not theirs to take: the flag alone, with no number here, fills nothing.
    make_user("bjones", directory_mobile=NUMBER)
    registration = start(wizard)
    response = wizard.post(phone_url(registration), {"use_directory_mobile": "1", "number_is_correct": "on"})
    assert response.status_code == 200
    assert "Enter the phone number of this device." in text(response)
    registration.refresh_from_db()
    assert not registration.phone_number


def test_a_landline_from_the_directory_is_proven_by_a_call_code_as_a_typed_one(
    wizard, person, recording_gateway, sending
):
    with_directory_mobile(person)
    registration = start(wizard, kind="landline")
    response = wizard.post(phone_url(registration), {"use_directory_mobile": "1", "number_is_correct": "on"})
    url = verify_url(registration)
    assert response["Location"] == url
    registration.refresh_from_db()
    assert registration.status == Registration.Status.PENDING and not registration.phone_verified_at

    page = text(ask_for_code(wizard, url, "voice", sending))
    assert f"We are calling {MASKED} with a 6-digit code." in page
    call = recording_gateway.last_to(NUMBER)
    response = enter_code(wizard, url, call.code)

    assert response["Location"] == f"/enroll/{registration.pk}/done/"
    registration.refresh_from_db()
    assert registration.status == Registration.Status.ACTIVE and registration.phone_device.confirmed


def test_coming_back_after_taking_the_offer_still_shows_the_number_masked(wizard, person):
    with_directory_mobile(person)
    registration = start(wizard)
    wizard.post(phone_url(registration), {"use_directory_mobile": "1", "number_is_correct": "on"})
    page = text(wizard.get(phone_url(registration)))
    assert MASKED in page and NUMBER not in page and 'name="use_directory_mobile"' in page
    # "Enter a different number" gives the empty field, never the directory's number in it.
    page = text(wizard.get(phone_url(registration) + "?use=typed"))
    assert 'name="phone_number"' in page and NUMBER not in page and "use_directory_mobile" not in page
    response = wizard.post(phone_url(registration), {"phone_number": "+44 20 7946 0958", "number_is_correct": "on"})
    assert response.status_code == 302
    registration.refresh_from_db()
    assert str(registration.phone_number) == "+442079460958"


def test_a_refused_directory_number_is_said_where_the_number_is_shown(wizard, person):
    """Taken from the directory, the number has no field on the page: its refusal is said in the paragraph that
    shows it, announced, and the link to type another one takes the focus."""
    with_directory_mobile(person, "+442079460958")  # London: not a country we call
    registration = start(wizard, kind="landline")

    response = wizard.post(phone_url(registration), {"use_directory_mobile": "1", "number_is_correct": "on"})

    assert response.status_code == 200
    page = text(response)
    assert 'class="error-summary"' not in page
    error = re.search(r'<div class="error" id="id_phone_number_error" role="alert"><p>([^<]+)</p>', page)
    assert error and error.group(1) == errors.PHONE_COUNTRY_NOT_ALLOWED
    assert re.search(r'<a href="[^"]*\?use=typed" aria-describedby="id_phone_number_error" autofocus>', page)
