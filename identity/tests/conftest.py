import pytest
from django.utils import timezone

from testsupport import fresh_code


@pytest.fixture
def enroll_another():
    """Bind one more app device for a person who has one already.

    The root ``enroll`` fixture starts with no recent second factor, which BND-01
    allows only for the first device; here the person has just verified.
    """
    from devices import services

    def do(person, *, kind="tablet", platform="android"):
        registration = services.start_enrollment(person, kind=kind, verified_at=timezone.now())
        if kind == "mobile":
            registration = services.set_phone_number(
                registration, phone_number="+16175550199", actor=person, verified_at=timezone.now()
            )
        registration = services.set_platform(registration, platform=platform, actor=person)
        registration = services.issue_app_secret(registration, actor=person, verified_at=timezone.now())
        code = fresh_code(registration.app_device)
        return services.confirm_activation(registration, code=code, actor=person, verified_at=timezone.now())

    return do


@pytest.fixture
def two_devices(user, enroll, enroll_another):
    """``user`` with two confirmed app devices: (phone, tablet)."""
    phone = enroll(user).app_device
    tablet = enroll_another(user).app_device
    phone.refresh_from_db()
    tablet.refresh_from_db()
    return phone, tablet
