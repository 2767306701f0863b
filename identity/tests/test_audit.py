"""The audit log: what is written (AC-06), append-only (AC-08), tamper evidence (AC-09), no secrets (OTP-09)."""

import json
from types import SimpleNamespace

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction

from identity import audit, services
from identity.models import AuditEvent
from testsupport import AUDIT_REFUSAL, details_of, fresh_code, post_code, post_password, tamper_audit_log, wrong_code

pytestmark = pytest.mark.django_db


def _actions_since(sequence: int) -> list[str]:
    return list(AuditEvent.objects.filter(sequence__gt=sequence).order_by("sequence").values_list("action", flat=True))


def _last_sequence() -> int:
    last = AuditEvent.objects.order_by("-sequence").first()
    return last.sequence if last else 0


# --- AC-06: one event per security event -----------------------------------------------------------------


def test_ac06_password_failed_for_unknown_and_known_id(client, user):
    client.post("/account/sign-in/", {"username": "nobody42", "password": "wrong password here"})
    client.post("/account/sign-in/", {"username": user.username, "password": "wrong password here"})

    unknown, known = AuditEvent.objects.order_by("sequence")
    assert unknown.action == known.action == "signin.password_failed"
    assert unknown.subject is None
    assert known.subject == user
    assert unknown.ip == known.ip == "127.0.0.1"


def test_ac06_password_ok(client, user, password):
    post_password(client, user, password)

    assert _actions_since(0) == ["signin.password_ok"]
    event = AuditEvent.objects.get()
    assert event.subject == event.actor == user


def test_ac06_second_factor_ok_with_factor(client, enrolled_user, password):
    device = enrolled_user.registrations.get().app_device
    start = _last_sequence()
    post_password(client, enrolled_user, password)
    post_code(client, device, fresh_code(device))

    assert _actions_since(start) == ["signin.password_ok", "signin.second_factor_ok"]
    event = AuditEvent.objects.get(action="signin.second_factor_ok")
    assert event.subject == enrolled_user
    assert details_of(event) == {"factor": "authenticator_app", "entry_point": "web"}


def test_ac06_second_factor_failed_with_factor(client, enrolled_user, password):
    device = enrolled_user.registrations.get().app_device
    start = _last_sequence()
    post_password(client, enrolled_user, password)
    post_code(client, device, wrong_code(device))

    assert _actions_since(start) == ["signin.password_ok", "signin.second_factor_failed"]
    event = AuditEvent.objects.get(action="signin.second_factor_failed")
    assert details_of(event) == {"factor": "authenticator_app", "entry_point": "web", "consecutive_failures": 1}


def test_ac06_locked_and_unlocked(enrolled_user, settings, make_user):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    device = enrolled_user.registrations.get().app_device
    staff = make_user("helper1", is_staff=True)
    start = _last_sequence()
    for _ in range(settings.LOCKOUT_THRESHOLD):
        services.verify_second_factor(enrolled_user, device=device, code=wrong_code(device), ip="10.0.0.7")

    actions = _actions_since(start)
    assert actions.count("signin.second_factor_failed") == settings.LOCKOUT_THRESHOLD
    assert actions.count("account.locked") == 1
    assert actions[-1] == "account.locked"
    locked = AuditEvent.objects.get(action="account.locked")
    assert locked.subject == enrolled_user
    assert locked.ip == "10.0.0.7"

    start = _last_sequence()
    services.unlock_user(enrolled_user, actor=staff, reason="ticket 4711")
    assert _actions_since(start) == ["account.unlocked"]
    unlocked = AuditEvent.objects.get(action="account.unlocked")
    assert (unlocked.actor, unlocked.subject) == (staff, enrolled_user)


def test_ac06_signed_out(signed_in_client, enrolled_user):
    start = _last_sequence()
    signed_in_client.post("/account/sign-out/")

    assert _actions_since(start) == ["signin.signed_out"]
    assert AuditEvent.objects.get(action="signin.signed_out").subject == enrolled_user


def test_otp09_sign_in_leaves_no_code_or_password_in_the_log(client, enrolled_user, password, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # let the good code follow the bad one at once
    device = enrolled_user.registrations.get().app_device
    bad, good = wrong_code(device), fresh_code(device)
    post_password(client, enrolled_user, password)
    post_code(client, device, bad)
    post_code(client, device, good)

    logged = json.dumps(list(AuditEvent.objects.values("action", "details")))
    assert "signin.second_factor_ok" in logged
    for secret in (bad, good, password):
        assert secret not in logged


@pytest.mark.parametrize("key", ["code", "secret", "otp", "token", "password", "totp_seed", "Device_Code"])
def test_otp09_record_refuses_secret_looking_detail_keys(user, key):
    with pytest.raises(ValueError, match="secrets never enter the audit log"):
        audit.record("test.event", subject=user, details={key: "123456"})
    assert not AuditEvent.objects.exists()


# --- AC-09: hash chain ---------------------------------------------------------------------------------------


@pytest.fixture
def three_events(user):
    return [audit.record(f"test.event{n}", actor=user, subject=user, details={"n": n}) for n in (1, 2, 3)]


def _tamper(sql: str, params: list) -> None:
    """Edit the log behind the application's back, as someone with database access could."""
    tamper_audit_log(sql, params)


def test_ac09_intact_chain_verifies(three_events):
    assert audit.verify_chain() is None
    call_command("verify_audit_log")
    first, second, third = three_events
    assert first.prev_hash == audit.GENESIS_HASH
    assert second.prev_hash == first.hash
    assert third.prev_hash == second.hash


@pytest.mark.django_db(transaction=True)  # the owner edits committed rows
def test_ac09_events_appended_in_bulk_chain_as_one_by_one(user, make_user):
    other = make_user("other")
    audit.record("bulk.before", subject=user)
    count = audit.record_many(
        [("bulk.one", {"subject": user, "details": {"n": 1}}), ("bulk.two", {"actor": other, "ip": "192.0.2.7"})]
    )
    audit.record("bulk.after", subject=user)
    assert count == 2
    one, two = AuditEvent.objects.filter(action__startswith="bulk.").order_by("sequence")[1:3]
    assert (one.action, one.subject, one.details) == ("bulk.one", user, {"n": 1})
    assert (two.actor, two.ip, two.sequence) == (other, "192.0.2.7", one.sequence + 1)
    assert audit.verify_chain() is None
    with pytest.raises(ValueError):
        audit.record_many([("bulk.bad", {"details": {"password": "x"}})])


@pytest.mark.django_db(transaction=True)  # the owner edits committed rows
def test_ac09_edited_details_named(three_events):
    _tamper("UPDATE identity_auditevent SET details = %s WHERE sequence = 2", ['{"n": 99}'])

    problem = audit.verify_chain()

    assert problem is not None
    assert problem.sequence == 2
    assert "edited" in problem.reason
    with pytest.raises(CommandError, match="#2"):
        call_command("verify_audit_log")


@pytest.mark.django_db(transaction=True)  # the owner edits committed rows
def test_ac09_first_of_several_edits_named(three_events, user):
    _tamper("UPDATE identity_auditevent SET action = 'test.other' WHERE sequence IN (2, 3)", [])

    assert audit.verify_chain().sequence == 2


@pytest.mark.django_db(transaction=True)  # the owner edits committed rows
def test_ac09_rehashed_edit_still_detected(three_events):
    """Someone who also recomputes the edited row's hash breaks the next row's link instead."""
    edited = AuditEvent.objects.get(sequence=2)
    edited.details = {"n": 99}
    new_hash = audit.compute_hash(edited.prev_hash, edited)
    _tamper("UPDATE identity_auditevent SET details = %s, hash = %s WHERE sequence = 2", ['{"n": 99}', new_hash])

    problem = audit.verify_chain()

    assert problem is not None
    assert problem.sequence == 3
    assert "link" in problem.reason


@pytest.mark.django_db(transaction=True)  # the owner edits committed rows
def test_ac09_deleted_row_named_as_missing(three_events):
    _tamper("DELETE FROM identity_auditevent WHERE sequence = 2", [])

    problem = audit.verify_chain()

    assert problem is not None
    assert problem.sequence == 2
    assert "missing" in problem.reason
    with pytest.raises(CommandError, match=r"#2: missing"):
        call_command("verify_audit_log")


@pytest.mark.django_db(transaction=True)  # the owner edits committed rows
def test_ac09_deleted_first_row_named_as_missing(three_events):
    _tamper("DELETE FROM identity_auditevent WHERE sequence = 1", [])

    assert audit.verify_chain().sequence == 1


# --- AC-08: append-only at the database level -----------------------------------------------------------


def _refused(sql: str) -> str:
    with pytest.raises(DatabaseError) as refusal, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)
    return str(refusal.value)


@pytest.mark.postgres
def test_ac08_update_refused_by_trigger(three_events):
    message = _refused("UPDATE identity_auditevent SET details = '{}' WHERE sequence = 2")

    assert AUDIT_REFUSAL in message
    assert AuditEvent.objects.get(sequence=2).details == {"n": 2}
    assert audit.verify_chain() is None


@pytest.mark.postgres
def test_ac08_delete_refused_by_trigger(three_events):
    message = _refused("DELETE FROM identity_auditevent WHERE sequence = 2")

    assert AUDIT_REFUSAL in message
    assert AuditEvent.objects.count() == 3


@pytest.mark.postgres
def test_ac08_orm_update_and_delete_refused(three_events):
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(sequence=1).update(action="test.other")
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(sequence=1).delete()
    assert AuditEvent.objects.count() == 3
    assert audit.verify_chain() is None


@pytest.mark.postgres
def test_ac08_truncate_refused_by_trigger(three_events):
    with pytest.raises(DatabaseError) as refusal, transaction.atomic(), connection.cursor() as cursor:
        # The test connection lets TRUNCATE through so tables can be emptied between tests; production never does.
        cursor.execute("SET LOCAL enrollment.allow_audit_truncate = 'off'")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # else the refusal is about queued FK checks instead
        cursor.execute("TRUNCATE identity_auditevent")

    assert AUDIT_REFUSAL in str(refusal.value)
    assert AuditEvent.objects.count() == 3


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_ac09_appends_from_many_connections_at_once_keep_one_unbroken_chain(user):
    """Four threads, each its own connection, append at once: no sequence twice, none skipped, every link holds."""
    import threading

    from django.db import connection as thread_connection

    start = threading.Barrier(4)
    errors = []

    def append(n):
        try:
            start.wait()
            for i in range(25):
                audit.record("test.concurrent", subject=user, details={"thread": n, "i": i})
        except Exception as error:  # noqa: BLE001 (reported by the assertion below)
            errors.append(error)
        finally:
            thread_connection.close()

    threads = [threading.Thread(target=append, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    sequences = list(AuditEvent.objects.order_by("sequence").values_list("sequence", flat=True))
    assert sequences == list(range(1, len(sequences) + 1))
    assert AuditEvent.objects.filter(action="test.concurrent").count() == 100
    assert audit.verify_chain() is None


@pytest.mark.postgres
# An IPv4 address carried in IPv6 as a proxy or a dual-stack socket writes it (hex, upper case) is hashed as PostgreSQL
# prints it back (dotted), or the check would call a genuine row edited.
@pytest.mark.parametrize(
    "ip",
    [
        None,
        "10.0.0.7",
        "2001:db8::1",
        "::ffff:192.0.2.1",
        "::ffff:cb00:7105",
        "::FFFF:C000:201",
        "::192.0.2.1",
        "::c000:201",
    ],
)
def test_ac09_postgresql_hashes_each_append_as_the_check_recomputes_it(user, ip):
    """PostgreSQL computes the hash (migration 0008); the chain check recomputes it in Python from the stored row."""
    before = _last_sequence()
    details = {"name": 'Zoë 李 "quoted" \\ back', "nested": {"b": [1, 2.5, None], "a": True}, "empty": {}}
    returned = [
        audit.record("test.unicode", actor=user, subject=user, ip=ip, details=details),
        audit.record("test.nobody", ip=ip),
    ]
    stored = list(AuditEvent.objects.filter(sequence__gt=before).order_by("sequence"))
    assert [(e.pk, e.sequence, e.hash) for e in returned] == [(e.pk, e.sequence, e.hash) for e in stored]
    assert [e.sequence for e in stored] == [before + 1, before + 2]
    assert stored[1].prev_hash == stored[0].hash
    for event in stored:
        assert event.hash == audit.compute_hash(event.prev_hash, event)
    assert audit.verify_chain(first=before + 1) is None


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("ip", "printed"), [(None, None), ("2001:db8::1", "2001:db8::1"), ("::ffff:cb00:7105", "::ffff:203.0.113.5")]
)
def test_ac09_postgresql_hashes_a_bulk_append_in_one_statement_as_the_check_recomputes_it(
    user, make_user, ip, printed, assert_num_statements
):
    """The bulk append is one statement of PostgreSQL's (migration 0012), its hashes what the check recomputes."""
    other = make_user("other")
    before = _last_sequence()
    details = {"name": 'Zoë 李 "quoted" \\ back', "nested": {"b": [1, 2.5, None], "a": True}, "big": 2**40}
    events = [
        ("test.unicode", {"actor": user, "subject": other, "ip": ip, "details": details}),
        ("test.nobody", {}),
        ("test.nobody", {"subject": user}),
    ]
    with assert_num_statements(1):
        assert audit.record_many(events) == 3
    stored = list(AuditEvent.objects.filter(sequence__gt=before).order_by("sequence"))
    assert [(e.sequence, e.action, e.actor_id, e.subject_id, e.ip) for e in stored] == [
        (before + 1, "test.unicode", user.pk, other.pk, printed),
        (before + 2, "test.nobody", None, None, None),
        (before + 3, "test.nobody", None, user.pk, None),
    ]
    assert stored[0].details == details
    for event in stored:
        assert event.hash == audit.compute_hash(event.prev_hash, event)
    assert audit.verify_chain(first=before + 1) is None
    with assert_num_statements(0):
        assert audit.record_many([]) == 0


@pytest.mark.postgres
def test_ac09_both_appends_hash_through_one_sql_function():
    """The chain's hash is written once in SQL (migration 0012): both appends call it, neither hashes on its own."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT proname, prosrc FROM pg_proc WHERE proname IN "
            "('identity_audit_append', 'identity_audit_append_many', 'identity_audit_hash')"
        )
        sources = dict(cursor.fetchall())
    assert set(sources) == {"identity_audit_append", "identity_audit_append_many", "identity_audit_hash"}
    assert "sha256" in sources["identity_audit_hash"]
    for name in ("identity_audit_append", "identity_audit_append_many"):
        assert "identity_audit_hash(" in sources[name]
        assert "sha256" not in sources[name]


def test_ac09_the_hashed_text_is_the_whole_row_in_key_order(user):
    event = audit.record("test.canonical", actor=user, subject=user, ip="10.0.0.8", details={"b": 1, "a": "é"})
    whole = {
        "sequence": event.sequence,
        "created_at": event.created_at.isoformat(),
        "actor": user.pk,
        "subject": user.pk,
        "action": "test.canonical",
        "details": {"b": 1, "a": "é"},
        "ip": "10.0.0.8",
    }
    assert audit._canonical(event) == json.dumps(whole, sort_keys=True, separators=(",", ":"))


# Rows appended before the address was hashed as PostgreSQL prints it: the hash is over the address as the caller
# wrote it (identity.web.client_ip writes an IPv4-mapped address in hex), the row holds the address PostgreSQL prints
# dotted. The log is append-only, so they must verify as they are.
@pytest.mark.postgres
@pytest.mark.parametrize("written", ["::ffff:c000:201", "::ffff:c000:0201", "::FFFF:C000:201", "::c000:201"])
def test_ac09_a_row_hashed_over_the_hex_spelling_of_its_mapped_address_verifies(user, written):
    before = _last_sequence()
    row = audit._new_row("test.nobody", actor=user, subject=user, ip=None, details={"n": 1})
    row.ip = written  # as the append wrote it before: the caller's spelling, to PostgreSQL and into the hash
    audit.sql.execute(audit.APPEND_SQL, audit._append_params(row), fetch="one")
    audit.record("test.nobody", subject=user, ip="::ffff:192.0.2.1")
    stored = AuditEvent.objects.get(sequence=before + 1)
    assert stored.ip != written and stored.hash != audit.compute_hash(stored.prev_hash, stored)
    assert audit.verify_chain(first=before + 1) is None


def _rehash_over(sequence: int, ip: str, **changes) -> None:
    """Give row ``sequence`` the hash of itself with ``ip`` (and ``changes``) in the hash, its stored row unchanged."""
    event = AuditEvent.objects.get(sequence=sequence)
    hashed = {name: getattr(event, name) for name in ("action", "actor_id", "created_at", "details", "sequence")}
    hashed.update(subject_id=event.subject_id, ip=ip, **changes)
    new_hash = audit.compute_hash(event.prev_hash, SimpleNamespace(**hashed))
    _tamper("UPDATE identity_auditevent SET hash = %s WHERE sequence = %s", [new_hash, sequence])


@pytest.mark.django_db(transaction=True)  # the owner edits committed rows
@pytest.mark.parametrize(
    ("ip", "hashed_ip", "changes", "verifies"),
    [
        ("::ffff:192.0.2.1", "::ffff:c000:201", {}, True),  # the same address in hex: the row as it was hashed
        ("::ffff:192.0.2.1", "::ffff:c000:202", {}, False),  # another address
        ("::ffff:192.0.2.1", "::ffff:c000:201", {"details": {"n": 2}}, False),  # the same address, another row
        ("10.0.0.7", "::ffff:a00:7", {}, False),  # an IPv4 address is not its IPv4-mapped IPv6 address
        ("::ffff:192.0.2.1", "192.0.2.1", {}, False),
    ],
)
def test_ac09_only_another_spelling_of_the_same_mapped_address_verifies(user, ip, hashed_ip, changes, verifies):
    event = audit.record("test.nobody", subject=user, ip=ip, details={"n": 1})
    _rehash_over(event.sequence, hashed_ip, **changes)
    problem = audit.verify_chain(first=event.sequence)
    assert problem == (None if verifies else audit.ChainProblem(event.sequence, "row content edited"))
