"""AC-06: every device event writes exactly one audit event, with who did it, to whom, and no secrets."""

import pytest
from django.test import Client

from devices.models import ActivationLink, Registration
from identity.audit import verify_chain
from identity.models import AuditEvent
from testsupport import details_of, fresh_code

from .helpers import email_link, events, walk_to_activate

DEVICE_EVENTS = (
    "enrollment.started",
    "enrollment.phone_entered",
    "enrollment.secret_issued",
    "enrollment.code_rejected",
    "activation_link.sent",
    "activation_link.password_failed",
    "activation_link.used",
    "device.bound",
    "device.renamed",
    "device.retired",
)


def device_events():
    return list(AuditEvent.objects.filter(action__in=DEVICE_EVENTS).order_by("sequence"))


@pytest.fixture
def enrolled_through_the_views(client, person, password, sign_in, clock, django_capture_on_commit_callbacks):
    """Person enrolls a phone with an emailed link and a wrong code on the way, then a tablet; returns both."""
    sign_in(client, person)
    phone = walk_to_activate(client, kind="mobile")
    token = email_link(client, phone, django_capture_on_commit_callbacks)
    link_browser = Client(REMOTE_ADDR="198.51.100.7")
    link_browser.post("/activate/", {"token": token})
    link_browser.post("/activate/", {"password": "wrong password"})
    link_browser.post("/activate/", {"password": password})
    client.post(f"/enroll/{phone.pk}/activate/", {"code": "12345x"})
    clock.tick(2)
    client.post(f"/enroll/{phone.pk}/activate/", {"code": fresh_code(phone.app_device)})
    tablet = walk_to_activate(client, kind="tablet")
    client.post(f"/enroll/{tablet.pk}/activate/", {"code": fresh_code(tablet.app_device)})
    return client, Registration.objects.get(pk=phone.pk), Registration.objects.get(pk=tablet.pk)


def test_ac06_enrollment_events(enrolled_through_the_views, person):
    _, phone, tablet = enrolled_through_the_views
    link = ActivationLink.objects.get()
    expected = [
        ("enrollment.started", person, {"registration": phone.pk, "kind": "mobile"}),
        ("enrollment.phone_entered", person, {"registration": phone.pk, "phone": "+1********23"}),
        ("enrollment.secret_issued", person, {"registration": phone.pk, "device": phone.app_device.persistent_id}),
        ("activation_link.sent", person, {"registration": phone.pk, "link": link.pk, "purpose": "activation"}),
        ("activation_link.password_failed", None, {"link": link.pk, "failures": 1, "revoked": False}),
        ("activation_link.used", person, {"link": link.pk, "registration": phone.pk, "purpose": "activation"}),
        ("enrollment.code_rejected", person, {"registration": phone.pk}),
        ("device.bound", person, {"registration": phone.pk, "kind": "mobile", "factor": "authenticator_app"}),
        ("enrollment.started", person, {"registration": tablet.pk, "kind": "tablet"}),
        ("enrollment.secret_issued", person, {"registration": tablet.pk, "device": tablet.app_device.persistent_id}),
        ("device.bound", person, {"registration": tablet.pk, "kind": "tablet", "factor": "authenticator_app"}),
    ]
    recorded = device_events()
    assert [(e.action, e.actor, details_of(e)) for e in recorded] == expected
    assert all(e.subject == person for e in recorded)
    assert verify_chain() is None


def test_ac06_link_events_carry_the_ip_of_the_browser_that_opened_it(enrolled_through_the_views):
    assert {e.ip for e in events("activation_link.password_failed")} == {"198.51.100.7"}
    assert {e.ip for e in events("activation_link.used")} == {"198.51.100.7"}
    assert {e.ip for e in events("device.bound")} == {"127.0.0.1"}


def test_ac06_rename_and_retire_events(enrolled_through_the_views, person):
    client, phone, tablet = enrolled_through_the_views
    before = AuditEvent.objects.count()
    client.post(f"/devices/{tablet.pk}/rename/", {"label": "Kitchen iPad"})
    client.post(f"/devices/{tablet.pk}/remove/")
    recorded = list(AuditEvent.objects.order_by("sequence")[before:])
    assert [(e.action, e.actor, e.subject, details_of(e)) for e in recorded] == [
        ("device.renamed", person, person, {"registration": tablet.pk, "from": tablet.label, "to": "Kitchen iPad"}),
        (
            "device.retired",
            person,
            person,
            {"registration": tablet.pk, "kind": "tablet", "reason": "removed", "sessions_ended": 0},
        ),
    ]
    assert verify_chain() is None


def test_ac06_refusals_change_nothing_and_write_no_success_event(enrolled_through_the_views):
    client, phone, tablet = enrolled_through_the_views
    before = AuditEvent.objects.count()
    client.post(f"/devices/{tablet.pk}/rename/", {"label": ""})
    client.post("/enroll/device-type/", {"kind": "smartwatch"})
    client.post(f"/enroll/{tablet.pk}/activate/", {"code": fresh_code(tablet.app_device)})  # already bound
    assert AuditEvent.objects.count() == before
