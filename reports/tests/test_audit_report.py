"""The audit log report: filters, sequence numbers, whether the chain verifies over the range shown (AC-09), its
exports (AC-05, AC-06); and the signed checkpoints that anchor the chain outside the database (AC-11)."""

import csv
import io
import json
import logging
from datetime import datetime, timedelta

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django.utils import timezone
from freezegun import freeze_time

from identity import audit
from identity.models import AuditEvent
from reports import selectors
from reports.selectors import AuditFilters
from reports.tasks import export_audit_checkpoint
from testsupport import tamper_audit_log as _tamper

pytestmark = pytest.mark.django_db

PAGE = "/admin/reports/audit/"
DAY1 = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.get_default_timezone())


@pytest.fixture
def history(make_user):
    """Events on three days by two actors; the auditor's own sign-in comes later, on the day of the test."""
    agent, ann, ben = make_user("agent7", is_staff=True), make_user("ann"), make_user("ben")
    events = []
    for day, (action, actor, subject, details) in enumerate(
        [
            ("signin.password_ok", ann, ann, {}),
            ("device.bound", ann, ann, {"registration": 1, "phone": "+16175550177"}),
            ("helpdesk.unlock", agent, ben, {"identity_check_method": "photo_id_in_person"}),
            ("account.locked", None, ben, {}),
            ("signin.second_factor_ok", ben, ben, {"factor": "phone"}),
            ("report.exported", agent, None, {"report": "enrollment", "rows": 3}),
        ]
    ):
        with freeze_time(DAY1 + timedelta(days=day // 2)):
            events.append(audit.record(action, actor=actor, subject=subject, details=details))
    return events


def actions(filters: AuditFilters) -> list[str]:
    return [row[3] for row in selectors.audit_rows(filters)]


def test_filters_by_time_range_group_actor_and_subject(history):
    day2 = DAY1.date() + timedelta(days=1)
    assert actions(AuditFilters(start=day2, end=day2)) == ["helpdesk.unlock", "account.locked"]
    assert actions(AuditFilters(group="signin")) == ["signin.password_ok", "signin.second_factor_ok"]
    assert actions(AuditFilters(group="helpdesk")) == ["helpdesk.unlock"]
    assert actions(AuditFilters(group="export")) == ["report.exported"]
    assert actions(AuditFilters(group="lockout", subject="ben")) == ["account.locked"]
    assert actions(AuditFilters(actor="agent7")) == ["helpdesk.unlock", "report.exported"]
    for filters in (AuditFilters(), AuditFilters(group="enrollment"), AuditFilters(subject="ann", start=day2)):
        assert selectors.audit_count(filters) == len(actions(filters))


def test_each_row_has_its_sequence_and_masked_details(history):
    rows = list(selectors.audit_rows(AuditFilters(subject="ann")))
    assert [row[0] for row in rows] == [history[0].sequence, history[1].sequence]
    assert rows[1][2] == "enrollment"
    assert "+16175550177" not in rows[1][7] and "77" in rows[1][7]


def test_the_page_says_the_chain_verifies_over_the_range_shown(auditor_client, history):
    day = DAY1.date().isoformat()
    page = auditor_client.get(PAGE, {"start": day, "end": day, "group": "signin"}).content.decode()

    first, second = history[0].sequence, history[1].sequence
    assert f"The hash chain verifies over events #{first} to #{second}" in page
    assert "Password accepted at sign-in" in page and "Device set up and working" not in page
    assert 'id="total-events">1 events match' in page


# The tables' owner edits committed rows.
@pytest.mark.django_db(transaction=True)
def test_ac09_the_page_names_the_edited_row(client, superuser, sign_in, history):
    sign_in(client, superuser)
    auditor_client = client
    edited = history[2].sequence
    _tamper("UPDATE identity_auditevent SET details = %s WHERE sequence = %s", ['{"n": 1}', edited])

    page = auditor_client.get(PAGE).content.decode()
    assert "does NOT verify" in page and f"row #{edited}, row content edited" in page
    # A range after the edit still verifies on its own: the page says over which events it checked.
    later = (DAY1.date() + timedelta(days=2)).isoformat()
    page = auditor_client.get(PAGE, {"start": later, "end": later}).content.decode()
    assert f"verifies over events #{history[4].sequence} to #{history[5].sequence}" in page


def test_ac05_ac06_audit_log_csv_export(auditor_client, auditor, history):
    day1 = DAY1.date().isoformat()
    response = auditor_client.post("/admin/reports/audit/export.csv", {"group": "enrollment", "end": day1})
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    header, *rows = list(csv.reader(io.StringIO(body)))

    assert header == [column.header for column in selectors.AUDIT_COLUMNS]
    assert [row[3] for row in rows] == ["device.bound"]
    assert "+16175550177" not in body
    assert not any(event.hash in body or event.prev_hash in body for event in AuditEvent.objects.all())
    event = AuditEvent.objects.order_by("-sequence").first()
    assert (event.action, event.actor, event.details["report"], event.details["rows"]) == (
        "report.exported",
        auditor,
        "audit",
        1,
    )
    assert event.details["filters"] == {"group": "enrollment", "end": day1}


def test_every_action_the_audit_log_may_hold_has_a_group():
    from identity.events import EVENTS

    # The root conftest gives made-up actions of its own tests the words "Test event <action>": not the log's.
    real = [action for action, words in EVENTS.items() if words != f"Test event {action}"]
    assert "campaigns.created" in real and "campaign.nudges_started" in real
    assert [action for action in real if not selectors.action_group(action)] == []
    assert set(selectors.ACTION_GROUPS) == set(selectors.ACTION_GROUP_LABELS)


def test_the_group_filter_finds_the_newer_families(make_user):
    person = make_user("cy")
    for action in ("campaigns.created", "campaign.weekly_summary_sent", "vpn.preauth", "sessions.ended"):
        audit.record(action, subject=person, details={})
    assert actions(AuditFilters(group="campaigns")) == ["campaigns.created", "campaign.weekly_summary_sent"]
    assert actions(AuditFilters(group="vpn")) == ["vpn.preauth"]
    assert [row[2] for row in selectors.audit_rows(AuditFilters(subject="cy"))] == [
        "campaigns",
        "campaigns",
        "vpn",
        "signin",
    ]


def test_ac05_network_addresses_and_tickets_leave_the_audit_export_as_they_are(auditor_client, make_user):
    details = {"networks": "10.80.120.0/24, 2001:db8::/32", "reference": "INC 0012345678", "phone": "617-555-0142"}
    audit.record("helpdesk.identity_checked", subject=make_user("dee"), details=details)
    response = auditor_client.post("/admin/reports/audit/export.csv", {"group": "helpdesk"})
    body = b"".join(response.streaming_content).decode("utf-8-sig")
    (row,) = list(csv.reader(io.StringIO(body)))[1:]
    assert json.loads(row[7]) == {**details, "phone": "+1********42"}


# --- AC-11: checkpoints outside the database ---------------------------------------------------------------


def test_ac11_checkpoint_task_logs_a_signed_head(history, caplog):
    with caplog.at_level(logging.INFO, logger="reports.audit_checkpoint"):
        result = export_audit_checkpoint.delay().get()

    head = AuditEvent.objects.order_by("-sequence").first()
    assert (result["sequence"], result["hash"]) == (head.sequence, head.hash)
    (line,) = [r.getMessage() for r in caplog.records if r.name == "reports.audit_checkpoint"]
    logged = json.loads(line.removeprefix("audit checkpoint "))
    assert logged == result
    assert audit.verify_chain(checkpoints=[audit.Checkpoint.from_dict(logged)]) is None


@pytest.mark.django_db(transaction=True)  # the owner edits committed rows
def test_ac11_truncated_tail_is_named_against_a_checkpoint(history):
    checkpoint = audit.make_checkpoint()
    _tamper("DELETE FROM identity_auditevent WHERE sequence >= 5", [])

    assert audit.verify_chain() is None  # the chain alone cannot see a missing tail
    problem = audit.verify_chain(checkpoints=[checkpoint])
    assert problem.sequence == 5 and "truncated" in problem.reason and "#4" in problem.reason


@pytest.mark.django_db(transaction=True)  # the owner edits committed rows
def test_ac11_rewritten_tail_with_recomputed_hashes_is_named(history):
    checkpoint = audit.make_checkpoint()
    # Rewrite row 5 and recompute its hash and the next row's link and hash: the chain itself is consistent again.
    prev = AuditEvent.objects.get(sequence=4).hash
    for event in AuditEvent.objects.filter(sequence__gte=5).order_by("sequence"):
        if event.sequence == 5:
            event.details = {"factor": "security_key"}
        event.prev_hash = prev
        event.hash = audit.compute_hash(prev, event)
        _tamper(
            "UPDATE identity_auditevent SET details = %s, prev_hash = %s, hash = %s WHERE sequence = %s",
            [json.dumps(event.details), event.prev_hash, event.hash, event.sequence],
        )
        prev = event.hash

    assert audit.verify_chain() is None
    problem = audit.verify_chain(checkpoints=[checkpoint])
    assert problem.sequence == 6 and "rewritten" in problem.reason


def test_ac11_a_forged_checkpoint_is_refused(history, tmp_path):
    real = audit.make_checkpoint()
    forged = audit.Checkpoint(real.sequence + 5, "f" * 64, real.created_at, real.signature)
    assert "signature" in audit.verify_chain(checkpoints=[forged]).reason

    file = tmp_path / "checkpoints.jsonl"
    file.write_text(json.dumps(real.as_dict()) + "\n")
    call_command("verify_audit_log", checkpoints=str(file))
    file.write_text(json.dumps(forged.as_dict()) + "\n")
    with pytest.raises(CommandError, match="signature"):
        call_command("verify_audit_log", checkpoints=str(file))


def test_the_audit_rows_are_one_query_whatever_their_number(history, assert_max_num_statements):
    with assert_max_num_statements(1):
        few = list(selectors.audit_rows(AuditFilters(group="signin")))
    for n in range(50):
        audit.record("signin.password_ok", details={"n": n})
    with assert_max_num_statements(1):
        many = list(selectors.audit_rows(AuditFilters(group="signin")))
    assert len(many) == len(few) + 50


# --- AC-05: phone numbers typed in any common format --------------------------------------------------------------

TYPED_NUMBERS = {"(617) 555-0142": "+1********42", "617.555.0143": "+1********43", "+1 617 555 0144": "+1********44"}


@pytest.fixture
def typed_references(make_user):
    """Identity checks whose references an agent typed with a phone number in them, as people write numbers."""
    from helpdesk.services import record_identity_check

    agent, person = make_user("agent8", is_staff=True), make_user("pat")
    for typed in TYPED_NUMBERS:
        record_identity_check(person, actor=agent, method="callback_to_number_on_file", reference=f"called {typed}")
    return typed


def _in_clear(text: str) -> list[str]:
    digits = [typed for typed in TYPED_NUMBERS if typed in text]
    return digits + [n for n in ("6175550142", "6175550143", "6175550144") if n in text]


def test_ac_05_numbers_typed_in_a_reference_are_masked_on_the_audit_report_page(auditor_client, typed_references):
    page = auditor_client.get(PAGE, {"subject": "pat"}).content.decode()

    assert page.count("Identity checked: Called back on the number in the HR record (reference called ") == 3
    assert _in_clear(page) == []
    for masked in TYPED_NUMBERS.values():
        assert f"called {masked}" in page


def test_ac_05_numbers_typed_in_a_reference_are_masked_in_the_csv_and_xlsx(auditor_client, typed_references):
    import openpyxl

    body = b"".join(auditor_client.post(f"{PAGE}export.csv", {"subject": "pat"}).streaming_content).decode("utf-8-sig")
    _, *rows = list(csv.reader(io.StringIO(body)))
    assert len(rows) == 3 and _in_clear(body) == []
    details = [json.loads(row[-1])["reference"] for row in rows]
    assert details == [f"called {masked}" for masked in TYPED_NUMBERS.values()]

    response = auditor_client.post(f"{PAGE}export.xlsx", {"subject": "pat"})
    sheet = openpyxl.load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    cells = [str(cell.value) for row in sheet.iter_rows() for cell in row if cell.value is not None]
    assert _in_clear(" ".join(cells)) == []
    assert [json.loads(row[-1].value)["reference"] for row in sheet.iter_rows(min_row=2)] == details


def test_ac_05_a_number_on_a_line_of_its_own_is_masked_too(make_user):
    # JSON writes the line break as "\n": the number is found in the text before it becomes JSON.
    audit.record("helpdesk.identity_checked", subject=make_user("lin"), details={"reference": "Call back:\n6175550142"})
    (row,) = selectors.audit_rows(AuditFilters(subject="lin"))
    assert json.loads(row[-1])["reference"] == "Call back:\n+1********42"


@pytest.fixture
def no_verified_head():
    cache.delete(selectors.VERIFIED_HEAD_KEY)
    yield
    cache.delete(selectors.VERIFIED_HEAD_KEY)


def test_ac09_a_load_reads_only_the_events_after_the_last_verified_head(auditor_client, history, no_verified_head):
    first = auditor_client.get(PAGE).content.decode()
    assert "The hash chain verifies over events #1 to" in first and "not read again" not in first
    head = AuditEvent.objects.order_by("-sequence").first().sequence  # the auditor's sign-in and this page's events

    # The next load takes the verified head as it was, and verifies the events written since.
    audit.record("signin.password_ok", actor=history[0].actor, subject=history[0].actor)
    newest = AuditEvent.objects.order_by("-sequence").first().sequence
    status = selectors.audit_chain_status(AuditFilters())
    assert (status.verifies, status.verified_to, status.checked_now_from, status.last) == (True, head, head + 1, newest)
    page = auditor_client.get(PAGE).content.decode()
    assert f"Events #1 to #{newest} were verified by earlier loads and are not read again on each load" in page


@pytest.mark.django_db(transaction=True)  # the owner edits committed rows
def test_ac09_an_edit_after_the_verified_head_is_named_on_the_next_load(auditor_client, history, no_verified_head):
    auditor_client.get(PAGE)
    later = audit.record("device.bound", actor=history[0].actor, subject=history[0].actor, details={"kind": "mobile"})
    _tamper("UPDATE identity_auditevent SET details = %s WHERE sequence = %s", ['{"kind": "tablet"}', later.sequence])

    page = auditor_client.get(PAGE).content.decode()
    assert "does NOT verify" in page and f"row #{later.sequence}, row content edited" in page


@pytest.mark.django_db(transaction=True)  # the owner edits committed rows
def test_ac09_an_edit_before_the_verified_head_is_named_by_verify_again_and_then_on_every_load(
    auditor_client, history, no_verified_head
):
    auditor_client.get(PAGE)
    edited = history[2].sequence
    _tamper("UPDATE identity_auditevent SET details = %s WHERE sequence = %s", ['{"n": 1}', edited])
    # A load does not read the rows the last check verified again, and says when that check was...
    assert "not read again on each load" in auditor_client.get(PAGE).content.decode()

    # ...the button reads every one of them again, and names the edit,
    response = auditor_client.post("/admin/reports/audit/verify/", follow=True)
    page = response.content.decode()
    assert "Verified again now: The hash chain does NOT verify" in page
    assert f"row #{edited}, row content edited" in page.split('id="chain-status"')[1]
    # and every load after it verifies the whole range again until the chain is whole.
    assert f"row #{edited}, row content edited" in auditor_client.get(PAGE).content.decode()


@pytest.mark.django_db(transaction=True)  # the owner edits committed rows
def test_ac09_a_rewritten_verified_head_is_not_trusted(auditor_client, history, no_verified_head):
    auditor_client.get(PAGE)
    head = cache.get(selectors.VERIFIED_HEAD_KEY)["sequence"]
    _tamper("UPDATE identity_auditevent SET hash = %s WHERE sequence = %s", ["f" * 64, head])

    page = auditor_client.get(PAGE).content.decode()
    assert "does NOT verify" in page and "not read again" not in page
