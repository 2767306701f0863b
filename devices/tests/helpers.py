"""Small helpers for the devices tests. Test data comes from the services and the real views."""

import base64
import html
import re
from datetime import UTC, datetime

from django.core import mail
from django.utils import timezone

from devices import services
from devices.models import Registration
from identity.models import AuditEvent
from testsupport import fresh_code

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
