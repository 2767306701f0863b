"""AC-01: a person sees and changes only their own devices; another person's id gives 404."""

import pytest
from django.core import mail

from devices.models import ActivationLink, AuthenticatorAppDevice, OutboundMessage, Registration
from identity.models import AuditEvent

from .helpers import add_app_device, pending_app_registration

WIZARD_STEPS = ("phone/", "platform/", "install/", "activate/", "done/")
DEVICE_PAGES = ("rename/", "remove/")


def snapshot(person):
    """Everything about the person's devices that a request could change."""
    return (
        list(Registration.objects.filter(user=person).order_by("pk").values()),
        list(AuthenticatorAppDevice.objects.filter(user=person).order_by("pk").values()),
        list(ActivationLink.objects.filter(user=person).order_by("pk").values()),
        OutboundMessage.objects.filter(user=person).count(),
        AuditEvent.objects.filter(subject=person).count(),
    )


@pytest.fixture
def victim(make_user, enroll):
    """Someone with an active phone, an active tablet and a mobile setup half-way (secret issued)."""
    person = make_user("victim")
    enroll(person)
    add_app_device(person, kind="tablet")
    pending_app_registration(person, kind="mobile", number="+16175550199")
    return person


@pytest.fixture(params=["without a device", "with a device"])
def intruder_client(request, client, make_user, enroll, sign_in):
    intruder = make_user("intruder")
    if request.param == "with a device":
        enroll(intruder)
    sign_in(client, intruder)
    return client


def test_ac01_wizard_urls_of_another_person_give_404(intruder_client, victim):
    before = snapshot(victim)
    for registration in Registration.objects.filter(user=victim):
        base = f"/enroll/{registration.pk}/"
        for step in WIZARD_STEPS:
            assert intruder_client.get(base + step).status_code == 404, base + step
            if step != "done/":
                data = {
                    "phone_number": "+16175550100",
                    "number_is_correct": "on",
                    "platform": "other",
                    "code": "123456",
                }
                assert intruder_client.post(base + step, data).status_code == 404, base + step
        assert intruder_client.get(base + "qr.svg").status_code == 404
        assert intruder_client.post(base + "email-link/").status_code == 404
    assert snapshot(victim) == before
    assert mail.outbox == []


def test_ac01_device_urls_of_another_person_give_404(intruder_client, victim):
    before = snapshot(victim)
    for registration in Registration.objects.filter(user=victim):
        base = f"/devices/{registration.pk}/"
        for page in DEVICE_PAGES:
            assert intruder_client.get(base + page).status_code == 404, base + page
        assert intruder_client.post(base + "rename/", {"label": "mine now"}).status_code == 404
        assert intruder_client.post(base + "remove/").status_code == 404
    assert snapshot(victim) == before


def test_ac01_my_devices_lists_only_own_devices(intruder_client, victim):
    page = intruder_client.get("/devices/").content.decode()
    for registration in Registration.objects.filter(user=victim):
        assert f"/devices/{registration.pk}/" not in page
    assert "**99" not in page


def test_ac01_unknown_ids_give_404_too(intruder_client):
    for url in ("/enroll/999999/activate/", "/enroll/999999/qr.svg", "/devices/999999/remove/"):
        assert intruder_client.get(url).status_code == 404
