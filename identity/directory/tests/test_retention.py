"""A leaver's devices are kept DIRECTORY_RETAIN_DAYS, so a person back within it finds them working; after that
they are retired (audited), by the daily beat task."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from devices.models import Registration
from identity.directory import people, tasks
from identity.models import AuditEvent, User

from .conftest import SYNC

pytestmark = pytest.mark.django_db


@pytest.fixture
def leaver(record, enroll):
    people.apply_record(record(), origin=SYNC)
    person = User.objects.get(username="asmith")
    enroll(person)
    people.apply_record(record(active=False), origin=SYNC)
    person.refresh_from_db()
    return person


def test_devices_are_kept_for_the_retention_days_and_come_back_with_the_person(leaver, record):
    days = settings.DIRECTORY_RETAIN_DAYS
    assert days == 30
    assert people.retire_devices_of_leavers(now=timezone.now() + timedelta(days=days - 1)) == 0
    assert people.apply_record(record(), origin=SYNC) == "reactivated"
    registration = Registration.objects.get(user=leaver)
    assert registration.status == Registration.Status.ACTIVE and registration.app_device.confirmed


def test_devices_of_a_leaver_gone_longer_are_retired_audited_once(
    leaver, record, make_user, enroll, assert_num_statements
):
    stayer = make_user("stayer")
    enroll(stayer)
    later = timezone.now() + timedelta(days=settings.DIRECTORY_RETAIN_DAYS, minutes=1)
    assert people.retire_devices_of_leavers(now=later) == 1
    with assert_num_statements(1):
        assert people.retire_devices_of_leavers(now=later) == 0
    registration = Registration.objects.get(user=leaver)
    assert registration.status == Registration.Status.RETIRED and not registration.app_device.confirmed
    (event,) = AuditEvent.objects.filter(subject=leaver, action="device.retired")
    assert event.details["reason"] == "directory_retention"
    assert Registration.objects.get(user=stayer).status == Registration.Status.ACTIVE
    # Back after that: the account works again, with no device (a fresh setup).
    assert people.apply_record(record(), origin=SYNC) == "reactivated"
    assert not Registration.objects.filter(user=leaver, status__in=Registration.IN_USE).exists()


def test_the_daily_task_retires_through_the_service(leaver, settings):
    settings.DIRECTORY_RETAIN_DAYS = 0
    assert tasks.retire_devices_of_leavers.delay().get() == 1
    assert "retire-devices-of-leavers" in settings.CELERY_BEAT_SCHEDULE
