"""People and staff by assurance (WA-05): how far the institution is from "staff phishing-resistant", counted by the
report's one query and checked against the tables and against the phishing-resistant rule the admin applies."""

import html
import re

import pytest
from django_otp import devices_for_user

from identity.models import User
from identity.selectors import is_staff_account
from reports import selectors
from reports.selectors import EnrollmentFilters

from .conftest import add_security_key
from .test_enrollment_report import independently

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
    assert totals.staff_strongest == expected == {"security_key": 1, "authenticator_app": 2, "phone": 0, "none": 1}
    assert totals.staff_not_phishing_resistant == 3
    assert totals.strongest["security_key"] == 3  # bob, the auditor, the lecturer
    assert [row[:2] for row in totals.assurance][0] == ("security_key", "Phishing-resistant (security key or passkey)")


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
        assert (report[strongest_column] == "security_key") == resistant, person.username


def test_WA_05_the_dashboard_and_the_report_show_the_staff_gap(institution, auditor_client, settings):
    settings.STAFF_PHISHING_RESISTANT_FROM = "2099-03-01"  # ahead: the auditor signed in with a code

    dashboard = html.unescape(auditor_client.get("/admin/reports/dashboard/").content.decode())
    report = html.unescape(auditor_client.get("/admin/reports/enrollment/?staff=yes").content.decode())

    assert "Staff without a security key or passkey: 3 of 4 (from 1 March 2099 the admin requires one)." in dashboard
    assert re.search(r"Phishing-resistant \(security key or passkey\)</th><td>3</td><td>1</td>", dashboard)
    assert re.search(r"Text or call only</th><td>1</td><td>0</td>", dashboard)  # carol's landline
    assert "Staff without a security key or passkey: 3 of 4." in report
    assert 'id="total-staff">4<' in report and "staff = True" in report
