"""Session handling of the sign-in flow: SES-01, SES-02, SES-06."""

import json

import pytest
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.test import Client
from freezegun import freeze_time

from devices.models import Registration
from identity import errors
from identity import session as signin_session
from identity.models import AuditEvent, PersonSession
from testsupport import PASSWORD, SECOND_FACTOR, SIGN_IN, fresh_code, post_code, post_password, signed_in_user_id

pytestmark = pytest.mark.django_db


def _session_store(key: str) -> SessionBase:
    from importlib import import_module

    return import_module(settings.SESSION_ENGINE).SessionStore(session_key=key)


def test_ses01_session_key_rotates_after_password_and_after_second_factor(client, enrolled_user, password):
    device = enrolled_user.registrations.get().app_device
    before = client.session.session_key  # the client makes and saves a session the way a visit would
    assert before

    post_password(client, enrolled_user, password)
    after_password = client.session.session_key
    post_code(client, device, fresh_code(device))
    after_second_factor = client.session.session_key

    assert len({before, after_password, after_second_factor}) == 3
    assert signed_in_user_id(client) == enrolled_user.pk
    # The old keys are gone from the store: a planted session id is worth nothing afterwards.
    assert not _session_store(before).exists(before)
    assert not _session_store(after_password).exists(after_password)


def test_ses01_session_key_rotates_at_sign_in_without_device(client, user, password):
    before = client.session.session_key

    post_password(client, user, password)

    assert client.session.session_key != before
    assert not _session_store(before).exists(before)
    assert signed_in_user_id(client) == user.pk


def test_ses02_pending_state_expires(client, enrolled_user, password):
    device = enrolled_user.registrations.get().app_device
    with freeze_time() as frozen:
        post_password(client, enrolled_user, password)
        frozen.tick(settings.SIGNIN_PENDING_SECONDS + 1)

        response = post_code(client, device, fresh_code(device))

        assert response.status_code == 302
        assert response["Location"] == SIGN_IN
        assert signed_in_user_id(client) is None
        assert signin_session.PENDING_USER not in client.session
        assert errors.SIGN_IN_EXPIRED in client.get(SIGN_IN).content.decode()
        # The code was not checked, so no failure was charged for the timeout.
        enrolled_user.refresh_from_db()
        assert enrolled_user.second_factor_failures == 0


def test_ses02_pending_state_still_good_just_before_expiry(client, enrolled_user, password):
    device = enrolled_user.registrations.get().app_device
    with freeze_time() as frozen:
        post_password(client, enrolled_user, password)
        frozen.tick(settings.SIGNIN_PENDING_SECONDS - 5)

        response = post_code(client, device, fresh_code(device))

    assert response.status_code == 302
    assert signed_in_user_id(client) == enrolled_user.pk


def test_ses02_pending_window_is_at_most_ten_minutes():
    assert 0 < settings.SIGNIN_PENDING_SECONDS <= 600


def _everything_in(session) -> str:
    return json.dumps(dict(session.items()), default=str)


def test_ses02_session_never_holds_the_password(client, enrolled_user, password):
    device = enrolled_user.registrations.get().app_device

    post_password(client, enrolled_user, password)
    pending = client.session
    assert pending[signin_session.PENDING_USER] == enrolled_user.pk
    assert PASSWORD not in _everything_in(pending)
    assert not [key for key in dict(pending.items()) if "password" in key.lower()]
    # The stored row, not only the decoded view of it.
    raw = _session_store(pending.session_key).load()
    assert PASSWORD not in json.dumps(raw, default=str)

    post_code(client, device, fresh_code(device))
    assert PASSWORD not in _everything_in(client.session)


# --- SES-06: every state change is a CSRF-checked POST -------------------------------------------


def _csrf_client() -> Client:
    return Client(enforce_csrf_checks=True)


def _token(client: Client) -> str:
    return client.cookies[settings.CSRF_COOKIE_NAME].value


def _sign_in_with_token(client: Client, person) -> None:
    client.get(SIGN_IN)
    response = client.post(
        SIGN_IN, {"username": person.username, "password": PASSWORD, "csrfmiddlewaretoken": _token(client)}
    )
    assert response.status_code == 302
    if response["Location"] == SECOND_FACTOR:
        device = person.registrations.get().app_device
        response = client.post(
            SECOND_FACTOR,
            {"device": device.persistent_id, "code": fresh_code(device), "csrfmiddlewaretoken": _token(client)},
        )
        assert response.status_code == 302


def test_ses06_sign_in_post_without_csrf_token_refused(user):
    client = _csrf_client()
    client.get(SIGN_IN)

    response = client.post(SIGN_IN, {"username": user.username, "password": PASSWORD})

    assert response.status_code == 403
    assert signed_in_user_id(client) is None
    assert not AuditEvent.objects.exists()  # refused before the view ran
    # The same post with the token goes through, so the token was the only thing missing.
    _sign_in_with_token(client, user)
    assert signed_in_user_id(client) == user.pk


def test_ses06_second_factor_post_without_csrf_token_refused(enrolled_user):
    client = _csrf_client()
    device = enrolled_user.registrations.get().app_device
    client.get(SIGN_IN)
    client.post(
        SIGN_IN, {"username": enrolled_user.username, "password": PASSWORD, "csrfmiddlewaretoken": _token(client)}
    )

    response = client.post(SECOND_FACTOR, {"device": device.persistent_id, "code": fresh_code(device)})

    assert response.status_code == 403
    assert signed_in_user_id(client) is None


def test_ses06_sign_out_post_without_csrf_token_refused(enrolled_user):
    client = _csrf_client()
    _sign_in_with_token(client, enrolled_user)

    response = client.post("/account/sign-out/")

    assert response.status_code == 403
    assert signed_in_user_id(client) == enrolled_user.pk
    assert not AuditEvent.objects.filter(action="signin.signed_out").exists()
    assert client.post("/account/sign-out/", {"csrfmiddlewaretoken": _token(client)}).status_code == 302
    assert signed_in_user_id(client) is None


def test_ses06_sign_out_by_get_not_allowed(signed_in_client, enrolled_user):
    response = signed_in_client.get("/account/sign-out/")

    assert response.status_code == 405
    assert signed_in_user_id(signed_in_client) == enrolled_user.pk
    assert not AuditEvent.objects.filter(action="signin.signed_out").exists()


def test_ses06_wizard_post_without_csrf_token_refused(user):
    client = _csrf_client()
    _sign_in_with_token(client, user)

    response = client.post("/enroll/device-type/", {"kind": "mobile"})

    assert response.status_code == 403
    assert not Registration.objects.filter(user=user).exists()
    accepted = client.post("/enroll/device-type/", {"kind": "mobile", "csrfmiddlewaretoken": _token(client)})
    assert accepted.status_code == 302
    assert Registration.objects.filter(user=user).count() == 1


def test_a_session_row_decodes_to_what_the_session_engine_stored(enrolled_user):
    # The row model names Django's own database store for decoding (not identity.session_store, which imports it).
    store = _session_store(None)
    store.update({"_auth_user_id": str(enrolled_user.pk), "step": "second factor"})
    store.save()
    row = PersonSession.objects.get(session_key=store.session_key)
    assert row.user_id == enrolled_user.pk
    assert row.get_decoded() == {"_auth_user_id": str(enrolled_user.pk), "step": "second factor"}
    assert PersonSession.get_session_store_class()().decode(row.session_data) == store.load()


def test_the_beat_task_deletes_expired_sessions_in_batches_and_keeps_the_rest(
    client, enrolled_user, sign_in, monkeypatch
):
    from datetime import timedelta

    from django.utils import timezone

    from identity import session_store, tasks
    from testsupport import CapturedStatements

    sign_in(client, enrolled_user)
    signed_in = client.session.session_key
    now = timezone.now()
    PersonSession.objects.bulk_create(
        [
            PersonSession(session_key=f"gone{i:028d}", session_data="", expire_date=now - timedelta(minutes=i + 1))
            for i in range(7)
        ]
        + [
            PersonSession(session_key=f"kept{i:028d}", session_data="", expire_date=now + timedelta(hours=1))
            for i in range(2)
        ]
    )
    monkeypatch.setattr(session_store, "CLEAR_EXPIRED_BATCH", 3)

    with CapturedStatements() as queries:
        assert tasks.clear_expired_sessions() == 7
    assert sum(query["sql"].startswith("DELETE") for query in queries.captured_queries) == 3  # 3 + 3 + 1
    assert set(PersonSession.objects.values_list("session_key", flat=True)) == {
        signed_in,
        *(f"kept{i:028d}" for i in range(2)),
    }
    assert tasks.clear_expired_sessions() == 0  # again: nothing left to do
    assert signed_in_user_id(client) == enrolled_user.pk  # the live session still works

    # Past the signed-in session's age, it goes too.
    with freeze_time(now + timedelta(seconds=settings.SESSION_COOKIE_AGE + 60)):
        assert tasks.clear_expired_sessions() == 3
    assert not PersonSession.objects.exists()
    assert settings.CELERY_BEAT_SCHEDULE["clear-expired-sessions"]["task"] == tasks.clear_expired_sessions.name
