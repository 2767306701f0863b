"""The dashboard (same numbers in a table beside every chart) and the weekly summary to the auditors."""

import html
import re
from datetime import UTC, datetime

import pytest
from django.core import mail
from django.utils import timezone
from freezegun import freeze_time

from devices.models import OutboundMessage, Registration
from identity import audit
from identity.models import AuditEvent, User
from reports import dashboard, selectors
from reports.selectors import EnrollmentFilters
from reports.services import queue_weekly_summary

from .conftest import add_security_key

pytestmark = pytest.mark.django_db

PAGE = "/admin/reports/dashboard/"


def test_dashboard_numbers_match_the_report_and_the_tables(auditor_client, population):
    totals = selectors.enrollment_totals(EnrollmentFilters())
    page = auditor_client.get(PAGE).content.decode()

    assert re.search(rf'id="dash-people">{totals.people}<', page)
    assert re.search(rf'id="dash-enrolled">{totals.enrolled} ', page)
    assert re.search(rf'id="dash-locked">{totals.locked}<', page)
    assert re.search(rf'id="dash-held">{totals.setup_held}<', page)
    # Every chart has a table with its caption, and the charts are drawn without script.
    for caption in (
        "People enrolled, cumulative, by week",
        "Percent enrolled, by department",
        "Devices in use, by kind",
    ):
        assert page.count(caption) >= 3  # the SVG's title, the figure's caption, the table's caption
    assert "<script" not in page.split('id="content-main"')[1]

    weeks = dashboard.enrolled_per_week()
    assert weeks[-1][2] == User.objects.filter(registrations__activated_at__isnull=False).distinct().count()
    cardiology = next(row for row in dashboard.enrolled_by_department() if row[0] == "Cardiology")
    assert cardiology == ("Cardiology", 3, 3, 100)


def _chart(page: str, chart_id: str) -> str:
    return re.search(rf'<svg[^>]*aria-labelledby="{chart_id}-title".*?</svg>', page, re.S).group(0)


def _texts(svg: str, css_class: str) -> list[str]:
    return [html.unescape(text) for text in re.findall(rf'<text class="{css_class}"[^>]*>([^<]*)</text>', svg)]


def test_each_chart_reads_on_its_own_with_labels_values_and_a_scale(auditor_client, population):
    page = auditor_client.get(PAGE).content.decode()

    departments = _chart(page, "chart-departments")
    by_department = dashboard.enrolled_by_department()
    cut = dashboard.LABEL_CHARS - 1
    assert _texts(departments, "label") == [
        name if len(name) <= cut + 1 else name[:cut] + "…" for name, *_ in by_department
    ]
    assert _texts(departments, "value") == [f"{percent}%" for *_, percent in by_department]
    assert _texts(departments, "tick") == ["0%", "25%", "50%", "75%", "100%"]
    assert _texts(departments, "axis-title") == ["Percent of the department enrolled"]

    kinds = _chart(page, "chart-kinds")
    totals = selectors.enrollment_totals(EnrollmentFilters())
    assert _texts(kinds, "value") == [str(count) for count in totals.devices.values()]
    assert "Mobile phones" in _texts(kinds, "label")
    assert _texts(kinds, "tick")[0] == "0" and int(_texts(kinds, "tick")[-1]) >= max(totals.devices.values())


def test_WA_04_the_dashboard_shows_passkeys_by_kind_and_counts_synced_and_device_bound_apart(
    auditor_client, population
):
    page = html.unescape(auditor_client.get(PAGE).content.decode())

    kinds = re.search(r"<table>\s*<caption>Devices in use, by kind</caption>.*?</table>", page, re.S).group(0)
    assert re.findall(r'<th scope="row">([^<]*)</th><td>(\d+)</td>', kinds) == [
        ("Mobile phones", "4"),  # alice's, erin's, grace's and the auditor's; dave's was reported lost
        ("Tablets", "1"),
        ("Landlines", "1"),
        ("Security keys", "1"),
        ("Passkeys", "2"),
    ]
    assert "Passkeys" in _texts(_chart(page, "chart-kinds"), "label")
    assurance = re.search(r'<table id="dash-assurance">.*?</table>', page, re.S).group(0)
    for words, people, staff in (
        ("Security keys", 1, 0),  # bob's
        ("Passkeys, this device only", 1, 0),  # hana's
        ("Passkeys, synced", 1, 0),  # ivan's
    ):
        assert f'<th scope="row">{words}</th><td>{people}</td><td>{staff}</td>' in assurance, words


def test_the_charts_over_time_read_on_their_own_too(auditor_client, population, staff_member):
    """The weekly charts (people enrolled so far, help-desk actions) name each week, give its value, and have a
    scale and an axis title, as the charts by department and kind do."""
    audit.record("helpdesk.device_reset", actor=staff_member, subject=population.alice, details={})
    page = auditor_client.get(PAGE).content.decode()

    for chart_id, rows, axis in (
        ("chart-weeks", [(week, total) for week, _, total in dashboard.enrolled_per_week()], "People enrolled so far"),
        ("chart-desk", dashboard.desk_actions_per_week(), "Help-desk actions"),
    ):
        drawn = _chart(page, chart_id)
        assert rows, chart_id
        assert _texts(drawn, "label") == [week for week, _ in rows], chart_id
        assert _texts(drawn, "value") == [str(value) for _, value in rows], chart_id
        ticks = _texts(drawn, "tick")
        assert ticks[0] == "0" and int(ticks[-1].replace(",", "")) >= max(value for _, value in rows), chart_id
        assert _texts(drawn, "axis-title") == [axis], chart_id


def test_a_chart_scales_to_round_steps_and_cuts_long_labels_short():
    chart = dashboard.chart([("Short", 3), ("A department with a very long name indeed", 10)], axis="People")

    assert [text for _, text in chart.ticks] == ["0", "5", "10"]
    short, long = chart.bars
    assert long.label == "A department with a very long name indeed"[: dashboard.LABEL_CHARS - 1] + "…"
    assert float(short.width) == pytest.approx(0.3 * float(long.width), abs=0.1)
    assert [bar.text for bar in chart.bars] == ["3", "10"]
    assert [text for _, text in dashboard.chart([("x", 1234)], axis="n").ticks] == ["0", "500", "1,000", "1,500"]
    assert not dashboard.chart([], axis="n")


def test_help_desk_actions_per_week(population, staff_member):
    audit.record("helpdesk.device_reset", actor=staff_member, subject=population.alice, details={})
    audit.record("helpdesk.device_reset", actor=staff_member, subject=population.bob, details={})
    week = timezone.localdate() - timezone.timedelta(days=timezone.localdate().weekday())
    assert dashboard.desk_actions_per_week() == [(week.isoformat(), 2)]


def test_ac03_help_desk_cannot_open_the_dashboard(client, staff_member, sign_in):
    sign_in(client, staff_member)
    assert client.get(PAGE).status_code == 403


def test_ac11_weekly_summary_goes_to_auditors_through_the_outbox_with_a_checkpoint(
    auditor, population, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        assert queue_weekly_summary() == 1

    (message,) = OutboundMessage.objects.filter(template="reports:weekly_summary")
    assert message.recipient == auditor.email and message.status == "sent"
    event = AuditEvent.objects.get(action="report.weekly_summary_sent")
    assert event.details["recipients"] == 1
    assert event.details["checkpoint_sequence"] == event.sequence - 1
    (email,) = [m for m in mail.outbox if m.to == [auditor.email]]
    totals = selectors.enrollment_totals(EnrollmentFilters())
    assert f"Enrolled: {totals.enrolled} (" in email.body
    assert (
        f"Staff without a security key or passkey: {totals.staff_not_phishing_resistant} of {totals.staff}\n"
        in email.body
    )
    assert totals.staff == 2  # the population's approver and the auditor, neither with a key
    assert "/admin/reports/dashboard/" in email.body
    assert AuditEvent.objects.get(sequence=event.sequence - 1).hash in email.body


def test_the_admin_index_offers_the_reports_to_auditors_only(auditor_client, client, staff_member, sign_in):
    assert "/admin/reports/" in auditor_client.get("/admin/").content.decode()
    desk = type(client)()
    sign_in(desk, staff_member)
    page = desk.get("/admin/")
    assert page.status_code == 200 and "/admin/reports/" not in page.content.decode()


def test_WA_05_weekly_summary_counts_passkeys_with_security_keys(
    auditor, population, django_capture_on_commit_callbacks
):
    add_security_key(population.alice, Registration.Kind.PASSKEY, synced=True)
    with django_capture_on_commit_callbacks(execute=True):
        assert queue_weekly_summary() == 1

    (email,) = [m for m in mail.outbox if m.to == [auditor.email]]
    totals = selectors.enrollment_totals(EnrollmentFilters())
    assert totals.strongest["passkey_synced"] >= 1
    resistant = sum(totals.strongest[name] for name in selectors.PHISHING_RESISTANT)
    assert totals.phishing_resistant == resistant
    assert f"Strongest factor: security key or passkey {resistant}," in email.body


def test_week_labels_are_the_weeks_first_day_in_the_sites_zone_west_of_utc(settings, make_user, enroll, staff_member):
    """Monday 03:00 UTC is Sunday evening in Chicago: that week began on the Monday before, there."""
    settings.TIME_ZONE = "America/Chicago"
    sunday_evening_in_chicago = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    with freeze_time(sunday_evening_in_chicago):
        enroll(make_user("west"))
        audit.record("helpdesk.device_reset", actor=staff_member, subject=make_user("other"), details={})
        assert timezone.localdate().isoformat() == "2026-03-01"

        # (The help-desk agent enrolled today, in a later week.)
        assert dashboard.enrolled_per_week()[0][:2] == ("2026-02-23", 1)
        assert dashboard.desk_actions_per_week() == [("2026-02-23", 1)]
