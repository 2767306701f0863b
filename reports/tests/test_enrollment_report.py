"""The enrollment report: rows and totals against the data the services made, counted independently (AC-09 spirit:
the report is only trusted when it agrees with the tables), and a fixed number of queries whatever the size."""

from datetime import timedelta

import pytest
from django.db.models import Min, Q
from django.utils import timezone
from django_otp import devices_for_user

from devices.models import BackupCode, Registration
from identity.models import User
from reports import selectors
from reports.selectors import EnrollmentFilters

from .conftest import FORMULA_DEPARTMENT

pytestmark = pytest.mark.django_db

WORKING = Q(app_device__confirmed=True) | Q(phone_device__confirmed=True) | Q(security_key_device__confirmed=True)


def rows_by_id(filters=EnrollmentFilters()) -> dict[str, dict]:
    keys = [column.key for column in selectors.ENROLLMENT_COLUMNS]
    return {row[0]: dict(zip(keys, row, strict=True)) for row in selectors.enrollment_rows(filters)}


def working_registrations(user) -> list[Registration]:
    return list(Registration.objects.filter(WORKING, user=user, status__in=Registration.IN_USE).distinct())


def independently(user) -> dict:
    """What the report should say about one person, from the tables by the ORM, not by the report's SQL."""
    working = working_registrations(user)
    kinds = [r.kind for r in working]
    # WebAuthn credentials by how they are held (WA-04): bound to one device unless they may be synced.
    bound = [
        r.kind
        for r in working
        if r.security_key_device_id and r.security_key_device.confirmed and not r.security_key_device.backup_eligible
    ]
    if "security_key" in bound:
        strongest = "security_key"
    elif "passkey" in bound:
        strongest = "passkey_device_bound"
    elif any(r.security_key_device_id and r.security_key_device.confirmed for r in working):
        strongest = "passkey_synced"
    elif any(r.app_device_id and r.app_device.confirmed for r in working):
        strongest = "authenticator_app"
    elif working:
        strongest = "phone"
    else:
        strongest = "none"
    return {
        "enrolled": bool(working),
        "mobile_devices": kinds.count("mobile"),
        "tablet_devices": kinds.count("tablet"),
        "landline_devices": kinds.count("landline"),
        "security_keys": kinds.count("security_key"),
        "passkeys": kinds.count("passkey"),
        "backup_codes_left": BackupCode.objects.filter(device__user=user, device__confirmed=True, used_at=None).count(),
        "strongest_factor": strongest,
        "first_enrolled_at": Registration.objects.filter(user=user).aggregate(m=Min("activated_at"))["m"],
        "locked": user.is_locked,
        "setup_held": user.lost_last_factor_at is not None and not working,
    }


def test_each_person_row_matches_the_tables(population, auditor):
    rows = rows_by_id()

    assert set(rows) == set(User.objects.filter(is_active=True).values_list("username", flat=True))
    for user in User.objects.all():
        expected = independently(user)
        row = rows[user.username]
        assert {key: row[key] for key in expected} == expected, user.username
        assert row["department"] == user.department
        assert row["vpn_access"] == user.vpn_access


def test_the_scenarios_land_where_an_auditor_expects(population):
    rows = rows_by_id()

    assert rows["alice"]["backup_codes_left"] == 9 and rows["alice"]["strongest_factor"] == "authenticator_app"
    assert rows["bob"]["strongest_factor"] == "security_key"
    assert (rows["bob"]["tablet_devices"], rows["bob"]["security_keys"]) == (1, 1)
    assert rows["carol"]["strongest_factor"] == "phone" and rows["carol"]["landline_devices"] == 1
    assert rows["dave"]["enrolled"] is False and rows["dave"]["setup_held"] is True
    assert rows["dave"]["first_enrolled_at"] is not None  # enrolled once, lost it since
    assert rows["erin"]["locked"] is True and rows["erin"]["mobile_devices"] == 1  # the removed phone is not counted
    assert rows["frank"]["enrolled"] is False and rows["frank"]["first_enrolled_at"] is None
    assert rows["frank"]["department"] == FORMULA_DEPARTMENT  # raw on the page; neutralized only in files
    assert rows["grace"]["mobile_devices"] == 1  # the reactivated phone is one device, not two
    assert rows["alice"]["name"] == "Alice Ng"
    assert (rows["hana"]["passkeys"], rows["hana"]["strongest_factor"]) == (1, "passkey_device_bound")
    assert (rows["ivan"]["passkeys"], rows["ivan"]["strongest_factor"]) == (1, "passkey_synced")


def test_last_use_is_the_latest_of_any_factor(population):
    # Alice signed in with a backup code after her phone: the code's use is the latest.
    stamps = [d.last_used_at for d in devices_for_user(population.alice, confirmed=None) if d.last_used_at]
    assert stamps
    assert rows_by_id()["alice"]["last_used_at"] == max(stamps)
    assert rows_by_id()["frank"]["last_used_at"] is None


@pytest.mark.parametrize(
    "filters",
    [
        EnrollmentFilters(),
        EnrollmentFilters(department="Cardiology"),
        EnrollmentFilters(vpn_access="approved"),
        EnrollmentFilters(enrolled=False),
        EnrollmentFilters(enrolled=True, department="Radiology"),
        EnrollmentFilters(has_kind="security_key"),
        EnrollmentFilters(has_kind="mobile"),
        EnrollmentFilters(has_kind="passkey"),
        EnrollmentFilters(strongest_factor="passkey_synced"),
        EnrollmentFilters(strongest_factor="passkey_device_bound", department="Physics"),
        EnrollmentFilters(strongest_factor="phone"),
        EnrollmentFilters(strongest_factor="none"),
        EnrollmentFilters(enrolled_from=timezone.localdate(), enrolled_to=timezone.localdate()),
        EnrollmentFilters(enrolled_to=timezone.localdate() - timedelta(days=1)),
        EnrollmentFilters(last_used_before=timezone.localdate() + timedelta(days=1)),
    ],
    ids=lambda f: ",".join(f"{k}={v}" for k, v in f.as_dict().items()) or "everyone",
)
def test_totals_agree_with_independent_counts_for_each_filter(population, filters):
    today = timezone.localdate()
    people = []
    for user in User.objects.filter(is_active=True):
        facts = independently(user)
        first = facts["first_enrolled_at"]
        if filters.department and user.department != filters.department:
            continue
        if filters.vpn_access and user.vpn_access != filters.vpn_access:
            continue
        if filters.enrolled is not None and facts["enrolled"] != filters.enrolled:
            continue
        if filters.has_kind and not facts[selectors.KIND_COLUMNS[filters.has_kind]]:
            continue
        if filters.strongest_factor and facts["strongest_factor"] != filters.strongest_factor:
            continue
        if filters.enrolled_from and not (first and timezone.localdate(first) >= filters.enrolled_from):
            continue
        if filters.enrolled_to and not (first and timezone.localdate(first) <= filters.enrolled_to):
            continue
        if filters.last_used_before and not facts["enrolled"]:
            continue
        people.append((user, facts))

    totals = selectors.enrollment_totals(filters)

    assert totals.people == len(people) == len(list(selectors.enrollment_rows(filters)))
    assert totals.enrolled == sum(f["enrolled"] for _, f in people)
    assert totals.vpn_approved == sum(u.vpn_access == "approved" for u, _ in people)
    assert totals.vpn_approved_not_enrolled == sum(u.vpn_access == "approved" and not f["enrolled"] for u, f in people)
    assert totals.locked == sum(f["locked"] for _, f in people)
    assert totals.setup_held == sum(f["setup_held"] for _, f in people)
    for kind, column in selectors.KIND_COLUMNS.items():
        assert totals.devices[kind] == sum(f[column] for _, f in people)
    for name in selectors.FACTOR_STRENGTH:
        assert totals.strongest[name] == sum(f["strongest_factor"] == name for _, f in people)
    assert today  # the date filters above are relative to the day the data was made


def test_the_sample_data_covers_every_column(population):
    """Guards the tests above: totals that are all zero would agree with anything."""
    totals = selectors.enrollment_totals(EnrollmentFilters())
    assert set(totals.devices) == set(Registration.Kind.values)  # every kind of device has its column
    assert all(totals.devices.values())
    assert all(count for name, count in totals.strongest.items())
    assert totals.locked == 1 and totals.setup_held == 1 and totals.vpn_approved_not_enrolled == 2


def test_the_report_is_one_query_whatever_the_number_of_people(make_user, enroll, assert_max_num_statements):
    def run():
        with assert_max_num_statements(1):
            rows = list(selectors.enrollment_rows(EnrollmentFilters(enrolled=True)))
        with assert_max_num_statements(1):
            totals = selectors.enrollment_totals(EnrollmentFilters(enrolled=True))
        assert totals.people == len(rows)
        return len(rows)

    for n in range(3):
        enroll(make_user(f"small{n}"))
    assert run() == 3
    for n in range(40):
        enroll(make_user(f"big{n}"), kind="tablet")
    assert run() == 43
