"""Help-desk activity: actions per agent and per kind, with the identity checks they relied on.

The help desk's own actions are audited as ``helpdesk.*`` with ``details["identity_check_method"]``; until they exist
these tests write such events through the one audit writer, as those services will. The recovery link is the existing
desk service and is made through it.
"""

import csv
import io
from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone
from freezegun import freeze_time

from helpdesk import services
from helpdesk.models import IdentityCheck
from identity import audit
from identity.models import AuditEvent
from identity.services import unlock_user
from reports import selectors
from reports.selectors import DeskFilters

pytestmark = pytest.mark.django_db

PAGE = "/admin/reports/helpdesk/"


@pytest.fixture
def desk_history(make_user, enroll, staff_member):
    other_agent = make_user("desk2", is_staff=True)
    ann, ben = make_user("ann"), make_user("ben")
    enroll(ann)
    services.send_reactivation_link(
        ann, actor=staff_member, identity_check=IdentityCheck(method="photo_id_in_person", reference="badge 123")
    )
    for agent, action, method in [
        (staff_member, "helpdesk.device_reset", "photo_id_in_person"),
        (staff_member, "helpdesk.device_reset", "callback_to_number_on_file"),
        (staff_member, "helpdesk.bypass_code_issued", "callback_to_number_on_file"),
        (other_agent, "helpdesk.device_reset", "video_call_with_photo_id"),
    ]:
        audit.record(action, actor=agent, subject=ben, details={"identity_check_method": method})
    unlock_user(ben, actor=other_agent, reason="called in")
    # A person's own actions are not the help desk's.
    audit.record("signin.password_ok", actor=ann, subject=ann)
    with freeze_time(timezone.now() - timedelta(days=40)):
        audit.record(
            "helpdesk.device_reset", actor=other_agent, subject=ann, details={"identity_check_method": "manager"}
        )
    return staff_member, other_agent


def by_key(filters=DeskFilters()) -> dict:
    return {(row[0], row[1]): row for row in selectors.desk_rows(filters)}


def test_actions_per_agent_and_kind_with_methods(desk_history):
    agent, other = desk_history
    rows = by_key()

    assert rows[(agent.username, "helpdesk.device_reset")][3:5] == (
        2,
        "callback_to_number_on_file: 1; photo_id_in_person: 1",
    )
    assert rows[(agent.username, "recovery.link_sent")][3:5] == (1, "photo_id_in_person: 1")
    assert rows[(other.username, "account.unlocked")][3:5] == (1, "")
    assert rows[(other.username, "helpdesk.device_reset")][3] == 2
    assert not any(action.startswith("signin.") for _, action in rows)


def test_totals_agree_with_independent_counts(desk_history):
    agent, other = desk_history
    since = timezone.localdate() - timedelta(days=7)
    summary = selectors.desk_summary(DeskFilters(start=since))
    # Independently: what staff did to someone else in the range.
    desk = AuditEvent.objects.filter(created_at__date__gte=since, actor__is_staff=True).exclude(subject=F("actor"))
    assert summary["total"] == desk.count() == 6
    assert summary["per_agent"] == {
        agent.username: desk.filter(actor=agent).count(),
        other.username: desk.filter(actor=other).count(),
    }
    # By the methods' words.
    assert summary["per_method"][IdentityCheck.Method.CALLBACK.label] == 2
    assert summary["per_method"][IdentityCheck.Method.PHOTO_ID_IN_PERSON.label] == 2
    assert "manager" not in summary["per_method"]  # 40 days ago, outside the range


def test_page_and_csv(auditor_client, desk_history):
    agent, _ = desk_history
    page = auditor_client.get(PAGE, {"agent": agent.username}).content.decode()
    assert 'id="total-actions">4 help-desk actions' in page
    assert "helpdesk.bypass_code_issued" in page

    response = auditor_client.post("/admin/reports/helpdesk/export.csv", {"agent": agent.username})
    header, *rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert header == [column.header for column in selectors.DESK_COLUMNS]
    assert sorted(row[1] for row in rows) == [
        "helpdesk.bypass_code_issued",
        "helpdesk.device_reset",
        "recovery.link_sent",
    ]
    assert AuditEvent.objects.filter(action="report.exported", details__report="helpdesk").count() == 1


def test_help_desk_cannot_read_its_own_activity_report(client, staff_member, sign_in):
    sign_in(client, staff_member)
    assert client.get(PAGE).status_code == 403


def test_the_count_is_the_rows_so_every_row_can_be_paged_to(auditor_client, desk_history, monkeypatch):
    agent, _ = desk_history
    rows = list(selectors.desk_rows(DeskFilters(agent=agent.username)))
    assert len(rows) == 3  # one agent, three kinds of action

    page = auditor_client.get(PAGE, {"agent": agent.username}).content.decode()
    assert "Actions by agent 1 to 3 of 3</h2>" in page

    monkeypatch.setattr("reports.views.PAGE_SIZE", 2)
    first = auditor_client.get(PAGE, {"agent": agent.username}).content.decode()
    assert "Next page" in first
    last = auditor_client.get(PAGE, {"agent": agent.username, "page": 2}).content.decode()
    assert "Actions by agent 3 to 3 of 3</h2>" in last and "Next page" not in last


def test_the_desks_own_actions_are_told_apart_with_their_identity_checks(
    auditor_client, make_user, staff_member, enroll
):
    """The desk's runner writes every action as "helpdesk.action", naming it and its check in the details."""
    from helpdesk import runner

    ann = make_user("ann")
    enroll(ann)
    for _ in range(2):
        check = services.record_identity_check(
            ann, actor=staff_member, method=IdentityCheck.Method.VIDEO_CALL, reference="INC-7"
        )
        runner.perform("send_recovery_link", ann, actor=staff_member, identity_check=check, params={})
    check = services.record_identity_check(
        ann, actor=staff_member, method=IdentityCheck.Method.CALLBACK, reference="INC-8"
    )
    runner.perform("unlock", ann, actor=staff_member, identity_check=check, params={"reason": "called in"})

    rows = {row[2]: row[3:5] for row in selectors.desk_rows(DeskFilters()) if row[1] == "helpdesk.action"}
    assert rows == {
        "send_recovery_link": (2, "video_call_with_photo_id: 2"),
        "unlock": (1, "callback_to_number_on_file: 1"),
    }
    page = auditor_client.get(PAGE).content.decode()
    assert "<td>Help desk: unlock the account and lift any setup hold</td>" in page
    assert f"<td>{IdentityCheck.Method.VIDEO_CALL.label}: 2</td>" in page
