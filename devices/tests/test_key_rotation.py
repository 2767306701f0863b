"""Rotating FACTOR_ENCRYPTION_KEYS (docs/operations.md): every token re-encrypted under the new first key, in
batches, resumable, audited, with people signing in with real TOTP codes before, during and after."""

import threading
import time

import pytest
from cryptography.fernet import Fernet
from django.apps import apps
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, models, transaction
from django.test import Client

from devices import crypto, outbox, tasks
from devices.models import AuthenticatorAppDevice, OutboundMessage
from devices.services.keys import count_not_under_first_key, rotate_encryption_keys
from identity.models import AuditEvent
from vpn import services as vpn_services
from vpn.models import Integration, RadiusClient

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def _tokens():
    """Every stored token, by model: what rotation must reach."""
    return {
        model._meta.label: dict(model.objects.exclude(**{name: ""}).values_list("pk", name))
        for model, name in crypto.ENCRYPTED_FIELDS
    }


def _plain_texts():
    return {label: {pk: crypto.decrypt(token) for pk, token in rows.items()} for label, rows in _tokens().items()}


def _rotations():
    return list(AuditEvent.objects.filter(action="encryption.keys_rotated").order_by("sequence"))


@pytest.fixture
def estate(settings, make_user, enroll, monkeypatch):
    """People enrolled, filler devices, a queued text-like email (the broker down), an Auth API integration and a
    RADIUS client, everything encrypted under the old key alone."""
    settings.FACTOR_ENCRYPTION_KEYS = [OLD]
    people = [make_user(f"rotating{n}") for n in range(6)]
    for person in people:
        enroll(person)
    filler = make_user("filler")
    AuthenticatorAppDevice.objects.bulk_create(
        AuthenticatorAppDevice(user=filler, name=f"pending {n}", encrypted_secret=crypto.encrypt(bytes(20)))
        for n in range(30)
    )
    monkeypatch.setattr(outbox, "dispatch", lambda message_id, channel: False)  # the broker is down: stays queued
    with transaction.atomic():
        queued = outbox.queue_email(
            user=people[0],
            to="p0@example.edu",
            subject="Your link",
            body="open https://example.edu/a/xyz",
            template="test",
            holds_secret=True,
        )
    monkeypatch.undo()
    _, integration_secret = vpn_services.create_integration(name="Cisco ASA", actor=None)
    _, radius_secret = vpn_services.create_radius_client(name="ASA", network="10.9.0.0/24", actor=None)
    return {
        "people": people,
        "queued": queued,
        "integration_secret": integration_secret,
        "radius_secret": radius_secret,
        "plain": _plain_texts(),
    }


def _sign_in_web(sign_in, person):
    sign_in(Client(), person)  # the password, then a real code from the person's app; asserts each step passed


def test_every_encrypted_field_is_rotated():
    """A new ``encrypted_*`` field anywhere is registered for rotation, or it would stay under a retired key."""
    found = {
        (model, field.name)
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if field.name.startswith("encrypted_") and isinstance(field, models.TextField)
    }
    assert found == set(crypto.ENCRYPTED_FIELDS)
    assert {model for model, _ in found} >= {AuthenticatorAppDevice, OutboundMessage, Integration, RadiusClient}


def test_sign_in_works_before_during_and_after_rotation_and_the_old_key_can_go(settings, estate, sign_in):
    people = estate["people"]
    total = sum(len(rows) for rows in estate["plain"].values())

    settings.FACTOR_ENCRYPTION_KEYS = [NEW, OLD]  # every process gets the new key first, the old one still decrypts
    with pytest.raises(CommandError, match=f"{total} not yet under the first key"):
        call_command("rotate_encryption_keys", "--check")
    _sign_in_web(sign_in, people[0])  # before

    # During: another thread signs people in while the batches run (one row each). Batch k waits until the k-th
    # sign-in has started, so each sign-in overlaps the next batches; the first people's devices are not rotated
    # yet when they sign in, the last ones' are.
    during = [people[4], people[3], people[2], people[1]]
    started, done, errors, progress = [], [], [], {"batches": 0}
    advanced = threading.Condition()

    def sign_in_during():
        try:
            for person in during:
                with advanced:
                    advanced.wait_for(lambda: progress["batches"] > len(started), timeout=30)
                    device = AuthenticatorAppDevice.objects.get(user=person)
                    started.append(crypto.is_under_first_key(device.encrypted_secret))
                    advanced.notify_all()
                _sign_in_web(sign_in, person)
                with advanced:
                    done.append(progress["batches"])
                    advanced.notify_all()
        except Exception as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    def on_batch(result):
        with advanced:
            progress["batches"] = result.batches
            advanced.notify_all()
            advanced.wait_for(lambda: errors or len(started) >= min(result.batches, len(during)), timeout=30)
            if result.batches == len(during) + 2:
                advanced.wait_for(lambda: errors or len(done) == len(during), timeout=30)

    signer = threading.Thread(target=sign_in_during)
    signer.start()
    try:
        result = rotate_encryption_keys(batch_size=1, on_batch=on_batch)
    finally:
        with advanced:
            progress["batches"] = 10**6
            advanced.notify_all()
        signer.join(60)
    assert not errors, errors
    assert len(done) == len(during) and max(done) < result.batches  # all of them while the batches ran
    assert started == [False, False, True, True]  # the first two under the old key, the last two under the new
    assert result.completed and result.totals()["rotated"] == total and result.totals()["unreadable"] == 0

    call_command("rotate_encryption_keys", "--check")  # nothing left under the old key
    assert set(count_not_under_first_key().values()) == {0}
    (event,) = _rotations()
    assert event.details["rotated"] == total and event.details["completed"] is True
    assert event.details["rotated_by_model"]["devices.AuthenticatorAppDevice"] == 36
    assert OLD not in str(event.details) and NEW not in str(event.details)

    # After: the old key is removed from the settings and everything still decrypts to what it was.
    settings.FACTOR_ENCRYPTION_KEYS = [NEW]
    assert _plain_texts() == estate["plain"]
    _sign_in_web(sign_in, people[5])
    assert crypto.decrypt(Integration.objects.get().encrypted_secret).decode() == estate["integration_secret"]
    assert crypto.decrypt(RadiusClient.objects.get().encrypted_secret).decode() == estate["radius_secret"]
    tasks.send_outbound_message(estate["queued"].pk)  # the message queued under the old key goes out
    assert [m.body for m in mail.outbox if m.subject == "Your link"] == ["open https://example.edu/a/xyz"]


def test_a_stopped_rotation_is_audited_and_resumes_where_it_stopped(settings, estate):
    total = sum(len(rows) for rows in estate["plain"].values())
    settings.FACTOR_ENCRYPTION_KEYS = [NEW, OLD]

    class Stopped(Exception):
        pass

    def stop_after_two_batches(result):
        if result.batches == 2:
            raise Stopped

    with pytest.raises(Stopped):
        rotate_encryption_keys(batch_size=5, on_batch=stop_after_two_batches)
    (stopped,) = _rotations()
    assert stopped.details["completed"] is False and stopped.details["rotated"] == 10
    assert sum(count_not_under_first_key().values()) == total - 10

    before = _tokens()
    call_command("rotate_encryption_keys", "--batch-size", "7")
    after = _tokens()
    # The ten rotated already were skipped, not encrypted again.
    unchanged = sum(after[label][pk] == token for label, rows in before.items() for pk, token in rows.items())
    assert unchanged == 10
    resumed = _rotations()[-1]
    assert resumed.details["rotated"] == total - 10 and resumed.details["already_current"] == 10
    assert resumed.details["completed"] is True
    settings.FACTOR_ENCRYPTION_KEYS = [NEW]
    assert _plain_texts() == estate["plain"]


def test_a_row_changed_while_its_batch_waits_is_rotated_with_its_new_value(settings, estate):
    """The batch reads under the row lock: a change committed meanwhile is what gets re-encrypted, never the value
    the batch would have read before it."""
    settings.FACTOR_ENCRYPTION_KEYS = [NEW, OLD]
    device = AuthenticatorAppDevice.objects.filter(user=estate["people"][2]).get()
    outcome = {}
    with transaction.atomic():
        AuthenticatorAppDevice.objects.select_for_update().get(pk=device.pk)
        changed = Fernet(OLD).encrypt(b"a new secret, written under the old key").decode()
        AuthenticatorAppDevice.objects.filter(pk=device.pk).update(encrypted_secret=changed)

        def rotate():
            try:
                outcome["result"] = rotate_encryption_keys(batch_size=100)
            finally:
                connection.close()

        rotation = threading.Thread(target=rotate)
        rotation.start()
        _wait_until_someone_waits_for_our_lock()
    rotation.join(60)
    assert outcome["result"].completed
    device.refresh_from_db()
    assert crypto.is_under_first_key(device.encrypted_secret)
    settings.FACTOR_ENCRYPTION_KEYS = [NEW]
    assert device.secret_bytes() == b"a new secret, written under the old key"


def _wait_until_someone_waits_for_our_lock(timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND pg_backend_pid() = ANY(pg_blocking_pids(pid))"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.05)
    raise AssertionError("the rotation never waited for the locked row")


def test_check_and_bad_batch_size_change_nothing(settings, estate):
    settings.FACTOR_ENCRYPTION_KEYS = [NEW, OLD]
    before = _tokens()
    with pytest.raises(CommandError, match="at least 1"):
        call_command("rotate_encryption_keys", "--batch-size", "0")
    with pytest.raises(CommandError, match="not yet under the first key"):
        call_command("rotate_encryption_keys", "--check")
    assert _tokens() == before and _rotations() == []


def test_a_token_no_key_reads_is_counted_and_left_alone(settings, estate):
    settings.FACTOR_ENCRYPTION_KEYS = [NEW]  # the old key lost: nothing under it can be read any more
    with pytest.raises(CommandError, match="could not be read with any configured key"):
        call_command("rotate_encryption_keys")
    (event,) = _rotations()
    assert event.details["rotated"] == 0 and event.details["unreadable"] == sum(map(len, _tokens().values()))
