"""My devices: rename, remove with a recent second factor (BND-01), never the last one (BND-02),
retired and kept rather than deleted (BND-04)."""

from datetime import timedelta
from urllib.parse import quote

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_otp import devices_for_user

from devices import errors, services
from devices.models import AuthenticatorAppDevice, Registration
from testsupport import details_of, fresh_code, totp_for

from .helpers import add_app_device, events, text


@pytest.fixture
def two_devices(clock, person, enroll):
    """A person with an active phone and an active tablet, frozen in time; returns (phone, tablet)."""
    return enroll(person), add_app_device(person, kind="tablet")


def sign_in_with(client, person, registration, password):
    client.post("/account/sign-in/", {"username": person.username, "password": password})
    device = registration.app_device
    response = client.post(
        "/account/sign-in/second-factor/", {"device": device.persistent_id, "code": fresh_code(device)}
    )
    assert response.status_code == 302


def confirm_url(next_path: str) -> str:
    return "/account/sign-in/confirm/?next=" + quote(next_path, safe="")


def test_my_devices_lists_devices_with_masked_number(client, person, password, two_devices):
    phone, tablet = two_devices
    sign_in_with(client, person, phone, password)
    page = text(client.get("/devices/"))
    assert phone.display_name in page and tablet.display_name in page
    assert "+1********23" in page and "+16175550123" not in page
    assert f"/devices/{phone.pk}/remove/" in page and f"/devices/{tablet.pk}/rename/" in page


# --- Rename ----------------------------------------------------------------------------------------------


def test_rename_changes_label_and_device_name_and_is_audited(client, person, password, two_devices):
    phone, _ = two_devices
    sign_in_with(client, person, phone, password)
    old = phone.label
    response = client.post(f"/devices/{phone.pk}/rename/", {"label": "  Work phone  "})
    assert response.status_code == 302 and response["Location"] == "/devices/"
    phone.refresh_from_db()
    assert phone.label == "Work phone"
    assert AuthenticatorAppDevice.objects.get(pk=phone.app_device_id).name == "Work phone: app"
    event = events("device.renamed").get()
    assert (event.actor, event.subject) == (person, person)
    assert details_of(event) == {"registration": phone.pk, "from": old, "to": "Work phone"}
    assert "Work phone" in text(client.get("/devices/"))


def test_a_phone_whose_app_is_moving_to_a_new_phone_can_be_renamed(client, person, password, two_devices):
    """My devices offers "Rename" for a phone mid-change; a name binds nothing, so it is not refused then."""
    phone, _ = two_devices
    sign_in_with(client, person, phone, password)
    client.post(f"/devices/{phone.pk}/new-phone/", {"action": "start"})
    phone.refresh_from_db()
    assert phone.status == Registration.Status.REACTIVATING
    assert f"/devices/{phone.pk}/rename/" in text(client.get("/devices/"))

    response = client.post(f"/devices/{phone.pk}/rename/", {"label": "Work phone"})

    assert response.status_code == 302 and response["Location"] == "/devices/"
    phone.refresh_from_db()
    assert phone.label == "Work phone" and phone.status == Registration.Status.REACTIVATING
    for device_id in (phone.app_device_id, phone.pending_app_device_id):
        assert AuthenticatorAppDevice.objects.get(pk=device_id).name == "Work phone: app"
    assert events("device.renamed").count() == 1


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ("", errors.LABEL_INVALID),
        ("    ", errors.LABEL_INVALID),
        ("x" * 65, errors.LABEL_INVALID),
    ],
)
def test_rename_refuses_empty_or_too_long_names(client, person, password, two_devices, label, message):
    phone, _ = two_devices
    sign_in_with(client, person, phone, password)
    before = phone.label
    response = client.post(f"/devices/{phone.pk}/rename/", {"label": label})
    assert response.status_code == 200
    assert message in text(response)
    phone.refresh_from_db()
    assert phone.label == before
    assert not events("device.renamed").exists()


@pytest.mark.parametrize("label", ["", "   ", "x" * 65])
def test_rename_service_rechecks_the_name(two_devices, person, label):
    phone, _ = two_devices
    with pytest.raises(ValidationError) as refused:
        services.rename_registration(phone, label=label, actor=person)
    assert refused.value.messages == [errors.LABEL_INVALID]


def test_rename_accepts_64_characters(client, person, password, two_devices):
    phone, _ = two_devices
    sign_in_with(client, person, phone, password)
    assert client.post(f"/devices/{phone.pk}/rename/", {"label": "y" * 64}).status_code == 302
    phone.refresh_from_db()
    assert phone.label == "y" * 64


# --- BND-01 ----------------------------------------------------------------------------------------------


def test_bnd01_removal_needs_a_recent_second_factor(client, person, password, two_devices, clock):
    phone, tablet = two_devices
    sign_in_with(client, person, phone, password)
    clock.tick(settings.REAUTH_MAX_AGE_SECONDS + 1)

    remove_url = f"/devices/{tablet.pk}/remove/"
    response = client.post(remove_url)
    assert response.status_code == 302
    assert response["Location"] == confirm_url(remove_url)
    tablet.refresh_from_db()
    assert tablet.status == Registration.Status.ACTIVE
    assert not events("device.retired").exists()

    page = client.get(response["Location"])
    assert page.status_code == 200
    response = client.post(
        response["Location"], {"device": phone.app_device.persistent_id, "code": fresh_code(phone.app_device)}
    )
    assert response["Location"] == remove_url
    response = client.post(remove_url)
    assert response["Location"] == "/devices/"
    tablet.refresh_from_db()
    assert tablet.status == Registration.Status.RETIRED


def test_bnd01_removal_within_the_window_needs_no_new_code(client, person, password, two_devices, clock):
    phone, tablet = two_devices
    sign_in_with(client, person, phone, password)
    clock.tick(settings.REAUTH_MAX_AGE_SECONDS - 5)
    assert client.post(f"/devices/{tablet.pk}/remove/")["Location"] == "/devices/"


def test_bnd01_wrong_code_on_the_confirm_page_removes_nothing(client, person, password, two_devices, clock):
    phone, tablet = two_devices
    sign_in_with(client, person, phone, password)
    clock.tick(settings.REAUTH_MAX_AGE_SECONDS + 1)
    remove_url = f"/devices/{tablet.pk}/remove/"
    confirm = client.post(remove_url)["Location"]
    response = client.post(confirm, {"device": phone.app_device.persistent_id, "code": "000000"})
    assert response.status_code == 200
    clock.tick(5)
    assert client.post(remove_url)["Location"] == confirm_url(remove_url)
    tablet.refresh_from_db()
    assert tablet.status == Registration.Status.ACTIVE


def test_bnd01_second_enrollment_needs_a_recent_second_factor(client, person, password, enroll, clock):
    phone = enroll(person)
    sign_in_with(client, person, phone, password)
    clock.tick(settings.REAUTH_MAX_AGE_SECONDS + 1)

    response = client.post("/enroll/device-type/", {"kind": "tablet"})
    assert response["Location"] == confirm_url("/enroll/device-type/")
    assert not Registration.objects.filter(kind="tablet").exists()

    response = client.post(
        response["Location"], {"device": phone.app_device.persistent_id, "code": fresh_code(phone.app_device)}
    )
    assert response["Location"] == "/enroll/device-type/"
    response = client.post("/enroll/device-type/", {"kind": "tablet"})
    tablet = Registration.objects.get(kind="tablet")
    assert response["Location"] == f"/enroll/{tablet.pk}/platform/"


def test_bnd01_service_refuses_second_enrollment_without_recent_factor(person, enroll, clock):
    enroll(person)
    for verified_at in (None, timezone.now() - timedelta(seconds=settings.REAUTH_MAX_AGE_SECONDS + 1)):
        with pytest.raises(services.ReauthRequired):
            services.start_enrollment(person, kind="tablet", verified_at=verified_at)
    assert services.start_enrollment(person, kind="tablet", verified_at=timezone.now()).status == "pending"


def test_bnd01_first_enrollment_needs_no_second_factor(client, person, password, clock):
    client.post("/account/sign-in/", {"username": person.username, "password": password})
    clock.tick(3600)
    response = client.post("/enroll/device-type/", {"kind": "mobile"})
    registration = Registration.objects.get(user=person)
    assert response["Location"] == f"/enroll/{registration.pk}/phone/"


# --- BND-02 ----------------------------------------------------------------------------------------------


def test_bnd02_last_active_device_cannot_be_removed(client, person, password, enroll, clock):
    phone = enroll(person)
    add_pending = services.start_enrollment(person, kind="tablet", verified_at=timezone.now())
    sign_in_with(client, person, phone, password)
    response = client.post(f"/devices/{phone.pk}/remove/")
    assert response.status_code == 200
    assert errors.LAST_DEVICE in text(response)
    phone.refresh_from_db()
    assert phone.status == Registration.Status.ACTIVE
    assert AuthenticatorAppDevice.objects.get(pk=phone.app_device_id).confirmed
    assert not events("device.retired").exists()
    # A setup that is not finished is no replacement.
    assert add_pending.status == Registration.Status.PENDING


def test_bnd02_second_to_last_then_last(client, person, password, two_devices):
    phone, tablet = two_devices
    sign_in_with(client, person, phone, password)
    assert client.post(f"/devices/{tablet.pk}/remove/")["Location"] == "/devices/"
    response = client.post(f"/devices/{phone.pk}/remove/")
    assert errors.LAST_DEVICE in text(response)
    with pytest.raises(ValidationError) as refused:
        services.retire_registration(phone, actor=person, verified_at=timezone.now())
    assert refused.value.code == "last_device"


# --- BND-04 ----------------------------------------------------------------------------------------------


def test_bnd04_removed_device_is_retired_not_deleted(client, person, password, two_devices, clock):
    phone, tablet = two_devices
    tablet_totp = totp_for(tablet.app_device)
    sign_in_with(client, person, phone, password)
    client.post(f"/devices/{tablet.pk}/remove/")

    tablet.refresh_from_db()
    assert tablet.status == Registration.Status.RETIRED
    assert tablet.retired_at == timezone.now()
    assert tablet.retired_by == person
    device = AuthenticatorAppDevice.objects.get(pk=tablet.app_device_id)
    assert device.confirmed is False
    assert device.encrypted_secret == ""
    assert device.user == person

    clock.tick(30)
    assert device.verify_token(tablet_totp.now()) is False
    assert device.pk not in {d.pk for d in devices_for_user(person, confirmed=True)}

    page = text(client.get("/devices/"))
    assert "Removed devices" in page and tablet.display_name in page
    assert f"/devices/{tablet.pk}/remove/" not in page

    event = events("device.retired").get()
    assert (event.actor, event.subject) == (person, person)
    assert details_of(event) == {"registration": tablet.pk, "kind": "tablet", "reason": "removed", "sessions_ended": 0}


def test_bnd04_retired_device_cannot_be_used_to_sign_in(client, person, password, two_devices, clock):
    phone, tablet = two_devices
    tablet_totp = totp_for(tablet.app_device)
    services.retire_registration(tablet, actor=person, verified_at=timezone.now())
    clock.tick(30)
    client.post("/account/sign-in/", {"username": person.username, "password": password})
    page = text(client.get("/account/sign-in/second-factor/"))
    assert tablet.app_device.persistent_id not in page
    response = client.post(
        "/account/sign-in/second-factor/",
        {"device": tablet.app_device.persistent_id, "code": tablet_totp.now()},
    )
    assert response.status_code == 200
    assert client.get("/devices/").status_code == 302


def test_bnd04_retired_device_cannot_be_renamed_or_removed_again(client, person, password, two_devices):
    phone, tablet = two_devices
    sign_in_with(client, person, phone, password)
    client.post(f"/devices/{tablet.pk}/remove/")
    response = client.post(f"/devices/{tablet.pk}/rename/", {"label": "back again"})
    assert errors.NOT_ACTIVE in text(response)
    response = client.post(f"/devices/{tablet.pk}/remove/")
    assert errors.NOT_ACTIVE in text(response)
    assert events("device.retired").count() == 1
    assert Registration.objects.filter(user=person).count() == 2


def test_continue_an_unfinished_setup_leads_to_its_next_step(client, person, password, two_devices):
    """ "Setup not finished → continue" (My devices, and the start page) opens the step the setup stopped at."""
    phone, _ = two_devices
    sign_in_with(client, person, phone, password)
    client.post("/enroll/device-type/", {"kind": "mobile"})
    pending = Registration.objects.get(user=person, status=Registration.Status.PENDING)
    client.post(f"/enroll/{pending.pk}/phone/", {"phone_number": "+16175550166", "number_is_correct": "on"})
    client.post(f"/enroll/{pending.pk}/platform/", {"platform": "android"})
    install = f'href="/enroll/{pending.pk}/install/"'

    assert install in text(client.get("/devices/"))
    assert install in text(client.get("/enroll/"))
