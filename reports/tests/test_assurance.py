"""People and staff by assurance (WA-05): how far the institution is from "staff phishing-resistant", counted by the
report's one query and checked against the tables and against the phishing-resistant rule the admin applies."""

import html
import re
from collections import Counter

import pytest
from django_otp import devices_for_user

from devices.models import Registration, WorkingRegistration
from devices.services.security_keys import WEBAUTHN_KINDS
from identity.models import User
from identity.selectors import is_staff_account
from reports import selectors
from reports.selectors import EnrollmentFilters

from .conftest import add_security_key
from .test_enrollment_report import independently, rows_by_id

pytestmark = pytest.mark.django_db


@pytest.fixture
def institution(population, staff_member, auditor, superuser, make_user):
    """The population (with its unenrolled staff approver), an agent and a superuser with an app, an auditor with an
    app and a security key, and a person who is not staff with a key."""
    add_security_key(auditor)
    add_security_key(make_user("lecturer"))
    return population


def test_WA_05_staff_are_counted_by_assurance_apart_from_everyone(institution):
    people = list(User.objects.filter(is_active=True))
    staff = [person for person in people if is_staff_account(person)]
    expected = {name: 0 for name in selectors.ASSURANCE_LABELS}
    for person in staff:
        expected[independently(person)["strongest_factor"]] += 1

    totals = selectors.enrollment_totals(EnrollmentFilters())

    assert totals.staff == len(staff) == 4
    assert totals.staff_strongest == expected
    assert expected == {name: 0 for name in expected} | {"security_key": 1, "authenticator_app": 2, "none": 1}
    assert totals.staff_not_phishing_resistant == 3
    assert totals.strongest["security_key"] == 3  # bob, the auditor, the lecturer
    assert [row[:2] for row in totals.assurance][:3] == [
        ("security_key", "Security keys"),
        ("passkey_device_bound", "Passkeys, this device only"),
        ("passkey_synced", "Passkeys, synced"),
    ]


def test_WA_05_the_staff_filter_is_the_staff_rule_and_the_strongest_factor_is_the_device_rule(institution):
    staff_only = selectors.enrollment_totals(EnrollmentFilters(staff=True))
    rows = {row[0]: row for row in selectors.enrollment_rows(EnrollmentFilters(staff=True))}

    assert set(rows) == {p.username for p in User.objects.filter(is_active=True) if is_staff_account(p)}
    assert staff_only.people == 4 and staff_only.strongest == staff_only.staff_strongest
    assert selectors.enrollment_totals(EnrollmentFilters(staff=False)).staff == 0
    # "Phishing-resistant" in the report is what the admin requires: a confirmed device whose model says so.
    strongest_column = [c.key for c in selectors.ENROLLMENT_COLUMNS].index("strongest_factor")
    for person in User.objects.filter(is_active=True):
        resistant = any(d.phishing_resistant for d in devices_for_user(person, confirmed=True))
        report = {row[0]: row for row in selectors.enrollment_rows(EnrollmentFilters())}[person.username]
        assert (report[strongest_column] in selectors.PHISHING_RESISTANT) == resistant, person.username


def test_WA_05_the_dashboard_and_the_report_show_the_staff_gap(institution, auditor_client, settings):
    settings.STAFF_PHISHING_RESISTANT_FROM = "2099-03-01"  # ahead: the auditor signed in with a code

    dashboard = html.unescape(auditor_client.get("/admin/reports/dashboard/").content.decode())
    report = html.unescape(auditor_client.get("/admin/reports/enrollment/?staff=yes").content.decode())

    assert "Staff without a security key or passkey: 3 of 4 (from 1 March 2099 the admin requires one)." in dashboard
    assert re.search(r"Security keys</th><td>3</td><td>1</td>", dashboard)
    assert re.search(r"Text or call only</th><td>1</td><td>0</td>", dashboard)  # carol's landline
    assert "Staff without a security key or passkey: 3 of 4." in report
    assert 'id="total-staff">4<' in report and "Filters: Staff: Staff<" in report


@pytest.fixture
def passkey_holders(institution, staff_member, superuser, make_user):
    """Beside the population's passkeys (hana's on her computer alone, ivan's synced): the help-desk agent with a
    synced passkey, the superuser with one on this device only, a person whose "security key" is a credential that
    may be synced (a phone's passkey offered in a key's place), and a person with a synced passkey and a key."""
    add_security_key(staff_member, Registration.Kind.PASSKEY, synced=True)
    add_security_key(superuser, Registration.Kind.PASSKEY)
    add_security_key(make_user("syncedkey"), synced=True)
    both = make_user("both")
    add_security_key(both, Registration.Kind.PASSKEY, synced=True)
    add_security_key(both)
    return institution


def test_WA_04_synced_and_device_bound_passkeys_and_security_keys_are_counted_apart(passkey_holders):
    people = list(User.objects.filter(is_active=True))
    everyone = Counter(independently(person)["strongest_factor"] for person in people)
    staff = Counter(independently(person)["strongest_factor"] for person in people if is_staff_account(person))

    totals = selectors.enrollment_totals(EnrollmentFilters())

    assert totals.strongest == {name: everyone[name] for name in selectors.ASSURANCE_LABELS}
    assert totals.staff_strongest == {name: staff[name] for name in selectors.ASSURANCE_LABELS}
    counted = {words: (n, of_staff) for _, words, n, of_staff in totals.assurance}
    assert counted["Security keys"] == (4, 1)  # bob, the lecturer, the one with a key too; the auditor
    assert counted["Passkeys, this device only"] == (2, 1)  # hana; the superuser
    assert counted["Passkeys, synced"] == (3, 1)  # ivan, the key that may be synced; the agent
    assert totals.staff_not_phishing_resistant == 1  # the approver, who has no device
    rows = rows_by_id()
    assert (rows["syncedkey"]["security_keys"], rows["syncedkey"]["strongest_factor"]) == (1, "passkey_synced")
    assert (rows["both"]["passkeys"], rows["both"]["strongest_factor"]) == (1, "security_key")
    # What the view says of the other kinds: never synced, never unknown.
    assert set(
        WorkingRegistration.objects.exclude(kind__in=WEBAUTHN_KINDS).values_list("backup_eligible", flat=True)
    ) == {False}


def test_WA_04_the_dashboard_and_the_report_count_them_apart_for_everyone_and_staff(passkey_holders, auditor_client):
    for url, table in (("/admin/reports/dashboard/", "dash-assurance"), ("/admin/reports/enrollment/", "assurance")):
        page = html.unescape(auditor_client.get(url).content.decode())
        assurance = re.search(rf'<table id="{table}">.*?</table>', page, re.S).group(0)
        for words, people, staff in (
            ("Security keys", 4, 1),
            ("Passkeys, this device only", 2, 1),
            ("Passkeys, synced", 3, 1),
        ):
            assert f'<th scope="row">{words}</th><td>{people}</td><td>{staff}</td>' in assurance, (url, words)
        assert "Staff without a security key or passkey: 1 of 4" in page
        assert "resist phishing" in page
