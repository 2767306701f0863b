"""The Duo Auth API v2 as the unmodified ``duo_client`` package calls it, against the live server."""

import json
import threading
import time
from collections import Counter
from email.utils import formatdate
from functools import partial

import duo_client
import psycopg
import pytest
from django.db import connection
from django.test import Client as WebClient
from django.utils import timezone

from devices.models import OutboundMessage
from identity import audit
from identity.models import AuditEvent
from testsupport import PASSWORD, SECOND_FACTOR, SIGN_IN, fresh_code, wrong_code
from vpn import services
from vpn.tests.faults import assert_failed_closed, checks_under_fault

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def app_device(person):
    return person.registrations.get().app_device


def fails(call) -> dict:
    with pytest.raises(RuntimeError) as caught:
        call()
    data = caught.value.data
    return {"status": caught.value.status, **(data if isinstance(data, dict) else json.loads(data))}


def test_ping_and_check(duo):
    assert abs(duo().ping()["time"] - time.time()) < 5
    assert abs(duo().check()["time"] - time.time()) < 5


def test_api01_older_clients_sign_with_v2(duo):
    assert duo(sig_version=2).check()["time"]


def test_logo_is_not_found_in_duos_shape(duo):
    response, data = duo().api_call("GET", "/auth/v2/logo", {})
    assert response.status == 404
    assert json.loads(data) == {"stat": "FAIL", "code": 40401, "message": "Resource not found: no logo is configured"}


def test_preauth_deny_enroll_and_auth(duo, make_user, approve, enroll):
    assert duo().preauth(username="nobody")["result"] == "deny"
    not_approved = make_user("waiting")
    enroll(not_approved)
    assert duo().preauth(username="waiting")["result"] == "deny"

    no_device = make_user("newcomer")
    approve(no_device)
    answer = duo().preauth(username="newcomer")
    assert answer["result"] == "enroll"
    assert answer["enroll_portal_url"] == "http://localhost:8000/enroll/"

    ready = make_user("ready")
    enroll(ready, number="+16175550142")
    approve(ready)
    answer = duo().preauth(username="ready")
    assert answer["result"] == "auth"
    [device] = answer["devices"]
    assert device["capabilities"] == ["mobile_otp"]
    assert device["device"].startswith("DP") and len(device["device"]) == 20
    assert "push" not in json.dumps(answer)
    assert AuditEvent.objects.filter(action="vpn.preauth", subject=ready, ip="127.0.0.1").exists()


def test_auth_by_passcode_allows_a_good_code_once(duo, vpn_person):
    code = fresh_code(app_device(vpn_person))
    answer = duo().auth(factor="passcode", username="vpnuser", passcode=code)
    assert answer["result"] == "allow"
    event = AuditEvent.objects.filter(action="signin.second_factor_ok", subject=vpn_person).get()
    assert event.details["entry_point"] == "vpn"
    assert event.details["integration"] == duo().ikey
    assert event.ip == "127.0.0.1"
    # OTP-04: the same code again is refused (a second later: the same request within the second is a replay).
    time.sleep(1.1)
    assert duo().auth(factor="passcode", username="vpnuser", passcode=code)["result"] == "deny"


def test_auth_refuses_a_wrong_code_and_counts_it(duo, vpn_person):
    answer = duo().auth(factor="passcode", username="vpnuser", passcode=wrong_code(app_device(vpn_person)))
    assert answer == {"result": "deny", "status": "deny", "status_msg": services.DENIED}
    vpn_person.refresh_from_db()
    assert vpn_person.second_factor_failures == 1


def test_otp04_a_code_used_on_the_web_is_refused_at_the_vpn(duo, vpn_person):
    code = fresh_code(app_device(vpn_person))
    web = WebClient()
    web.post(SIGN_IN, {"username": "vpnuser", "password": PASSWORD})
    web.post(SECOND_FACTOR, {"device": app_device(vpn_person).persistent_id, "code": code})
    assert AuditEvent.objects.filter(action="signin.second_factor_ok", details__entry_point="web").exists()
    assert duo().auth(factor="passcode", username="vpnuser", passcode=code)["result"] == "deny"


def test_otp04_a_code_used_at_the_vpn_is_refused_on_the_web(duo, vpn_person):
    code = fresh_code(app_device(vpn_person))
    assert duo().auth(factor="passcode", username="vpnuser", passcode=code)["result"] == "allow"
    web = WebClient()
    web.post(SIGN_IN, {"username": "vpnuser", "password": PASSWORD})
    response = web.post(SECOND_FACTOR, {"device": app_device(vpn_person).persistent_id, "code": code})
    assert response.status_code == 200  # the form again, not a redirect into the site


def test_async_auth_and_auth_status(duo, vpn_person):
    code = fresh_code(app_device(vpn_person))
    txid = duo().auth(factor="passcode", username="vpnuser", passcode=code, async_txn=True)["txid"]
    status = duo().auth_status(txid)
    assert status["success"] is True and status["waiting"] is False
    other, _ = services.create_integration(name="other", actor=None)
    assert fails(lambda: duo(ikey=other.integration_key, skey=_).auth_status(txid))["code"] == 40002


def test_sms_and_phone_factors_queue_codes_in_the_outbox(duo, vpn_person, settings):
    from devices.models import PhoneDevice

    number = str(vpn_person.registrations.get().phone_number)
    PhoneDevice.objects.create(user=vpn_person, name="Mobile", number=number, can_text=True, confirmed=True)
    answer = duo().auth(factor="sms", username="vpnuser", device="auto")
    assert answer["result"] == "deny" and answer["status"] == "sms_sent"
    assert OutboundMessage.objects.filter(channel="sms", recipient=number).count() == 1
    preauth = duo().preauth(username="vpnuser")
    phone = next(d for d in preauth["devices"] if "phone" in d["capabilities"])
    settings.PHONE_RESEND_SECONDS = 0
    duo().auth(factor="phone", username="vpnuser", device=phone["device"])
    assert OutboundMessage.objects.filter(channel="voice", recipient=number).count() == 1
    # Nobody unknown gets anything sent, and the answer is the same.
    assert duo().auth(factor="sms", username="nobody", device="auto") == answer


def test_api04_every_refusal_looks_the_same(duo, vpn_person, make_user, enroll, approve, settings):
    settings.LOCKOUT_THRESHOLD = 1
    not_approved = make_user("notyet")
    enroll(not_approved)
    no_device = make_user("nodevice")
    approve(no_device)
    locked = make_user("locked")
    enroll(locked)
    approve(locked)
    duo().auth(factor="passcode", username="locked", passcode=wrong_code(app_device(locked)))
    locked.refresh_from_db()
    assert locked.is_locked
    answers = [
        duo().auth(factor="passcode", username=name, passcode="123456")
        for name in ("nobody", "notyet", "nodevice", "locked")
    ]
    answers.append(duo().auth(factor="passcode", username="vpnuser", passcode=wrong_code(app_device(vpn_person))))
    assert all(answer == answers[0] for answer in answers)
    assert answers[0]["result"] == "deny"


def test_api01_a_bad_signature_is_refused(duo, integration):
    error = fails(lambda: duo(skey="x" * 40).check())
    assert (error["status"], error["code"]) == (401, 40103)
    assert fails(lambda: duo(ikey="DI" + "X" * 18).check())["code"] == 40102
    assert AuditEvent.objects.filter(action="vpn.api_refused", details__reason="bad signature").exists()


def test_api02_an_old_date_is_refused(duo, monkeypatch):
    monkeypatch.setattr("duo_client.client.email.utils.formatdate", lambda: formatdate(time.time() - 301))
    error = fails(lambda: duo().check())
    assert (error["status"], error["code"]) == (401, 40105)


def test_api02_a_replayed_signature_is_refused(duo, vpn_person, monkeypatch):
    sent = []
    original = duo_client.client.Client._make_request

    def replaying(self, method, uri, body, headers):
        sent.append((method, uri, body, headers))
        first = original(self, method, uri, body, headers)
        second = original(self, method, uri, body, headers)
        sent.append(second)
        return first

    monkeypatch.setattr(duo_client.client.Client, "_make_request", replaying)
    code = fresh_code(app_device(vpn_person))
    assert duo().auth(factor="passcode", username="vpnuser", passcode=code)["result"] == "allow"
    response, data = sent[-1]
    assert response.status == 401 and json.loads(data)["code"] == 40103
    assert AuditEvent.objects.filter(action="vpn.api_refused", details__reason="replayed signature").exists()


def _sent_twice(monkeypatch) -> list:
    """Make duo_client send each request twice, byte for byte; collect the second answers (replays)."""
    replies = []
    original = duo_client.client.Client._make_request

    def replaying(self, method, uri, body, headers):
        first = original(self, method, uri, body, headers)
        replies.append(original(self, method, uri, body, headers))
        return first

    monkeypatch.setattr(duo_client.client.Client, "_make_request", replaying)
    return replies


def test_api02_a_replayed_wrong_code_is_refused_and_keeps_nothing(duo, vpn_person, monkeypatch):
    """The replay's check runs, then its commit fails on the remembered signature: no second failure is counted."""
    replies = _sent_twice(monkeypatch)
    before = AuditEvent.objects.count()
    answer = duo().auth(factor="passcode", username="vpnuser", passcode=wrong_code(app_device(vpn_person)))
    assert answer["result"] == "deny"
    response, data = replies[-1]
    assert response.status == 401 and json.loads(data)["code"] == 40103
    vpn_person.refresh_from_db()
    assert vpn_person.second_factor_failures == 1
    assert app_device(vpn_person).throttling_failure_count == 1
    actions = list(AuditEvent.objects.filter(sequence__gt=before).order_by("sequence").values_list("action", flat=True))
    assert actions == ["signin.second_factor_failed", "vpn.api_refused"]
    assert audit.verify_chain() is None


def test_api02_a_replayed_request_without_a_last_statement_is_refused_as_it_ends(duo, monkeypatch):
    replies = _sent_twice(monkeypatch)
    duo().check()
    response, data = replies[-1]
    assert response.status == 401 and json.loads(data)["code"] == 40103
    assert AuditEvent.objects.filter(action="vpn.api_refused", details__reason="replayed signature").count() == 1


def test_api02_one_signed_request_sent_at_once_from_four_connections_is_answered_once(duo, vpn_person, monkeypatch):
    """Copies of one signed request race: the replay check is made by each commit, so one copy is answered and the
    other three are refused as replays, keeping nothing (no failure counted for the code they found used)."""
    signed = []
    original = duo_client.client.Client._make_request

    def keep(self, method, uri, body, headers):
        signed.append((method, uri, body, headers))
        raise RuntimeError("kept, not sent")

    monkeypatch.setattr(duo_client.client.Client, "_make_request", keep)
    with pytest.raises(RuntimeError):
        duo().auth(factor="passcode", username="vpnuser", passcode=fresh_code(app_device(vpn_person)))
    start, replies = threading.Barrier(4), []

    def send():
        start.wait()
        response, data = original(duo(), *signed[0])
        replies.append((response.status, json.loads(data).get("code"), json.loads(data).get("response")))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(replies, key=str) == sorted(
        [(200, None, {"result": "allow", "status": "allow", "status_msg": "Success. Logging you in..."})]
        + [(401, 40103, None)] * 3,
        key=str,
    )
    vpn_person.refresh_from_db()
    assert vpn_person.second_factor_failures == 0
    assert AuditEvent.objects.filter(action="signin.second_factor_ok", subject=vpn_person).count() == 1
    assert not AuditEvent.objects.filter(action="signin.second_factor_failed").exists()
    assert AuditEvent.objects.filter(action="vpn.api_refused", details__reason="replayed signature").count() == 3


def test_api03_a_disabled_integration_is_refused(duo, integration):
    services.update_integration(integration, name=integration.name, allowed_networks="", enabled=False, actor=None)
    error = fails(lambda: duo().check())
    assert (error["status"], error["code"]) == (403, 40301)


def test_api03_an_address_outside_the_networks_is_refused(duo, integration):
    services.update_integration(
        integration, name=integration.name, allowed_networks="10.0.0.0/8", enabled=True, actor=None
    )
    assert fails(lambda: duo().check())["code"] == 40301
    services.update_integration(
        integration, name=integration.name, allowed_networks="127.0.0.0/8", enabled=True, actor=None
    )
    assert duo().check()["time"]


def test_api07_an_unreadable_secret_refuses(duo, settings):
    settings.FACTOR_ENCRYPTION_KEYS = ["2pZ0bSg0vJq3kq8uGdWc0d8Yw1j8H3m3o2Zt4c7m3eQ="]
    assert fails(lambda: duo().check())["status"] == 401


def test_api07_the_database_going_away_mid_request_denies(duo, vpn_person):
    """The person's row is held by another connection; the server's connection is killed while it waits."""
    code = fresh_code(app_device(vpn_person))
    result = {}

    def call():
        try:
            result["answer"] = duo().auth(factor="passcode", username="vpnuser", passcode=code)
        except RuntimeError as error:
            result["error"] = error

    db = connection.settings_dict
    with psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"]) as holder:
        holder.execute("SELECT id FROM identity_user WHERE id = %s FOR UPDATE", [vpn_person.pk])
        thread = threading.Thread(target=call)
        thread.start()
        waiting = []
        for _ in range(100):
            holder.execute("SELECT pg_stat_clear_snapshot()")  # the view is otherwise frozen for the transaction
            waiting = holder.execute(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            ).fetchall()
            if waiting:
                break
            time.sleep(0.05)
        assert waiting, f"the server never waited for the row: {result}"
        holder.execute("SELECT pg_terminate_backend(%s)", [waiting[0][0]])
        holder.rollback()
    thread.join(10)
    assert "answer" not in result
    assert result["error"].status == 500


def test_rel07_beat_forgets_signatures_whose_date_cannot_pass_and_keeps_the_rest(duo, integration):
    from datetime import timedelta

    from vpn.models import SeenSignature
    from vpn.tasks import forget_spent_state

    SeenSignature.objects.create(
        integration=integration, digest="0" * 64, seen_at=timezone.now() - timedelta(minutes=11)
    )
    duo().check()
    assert SeenSignature.objects.count() == 2  # the check only remembers its own: no deleting on the hot path
    forget_spent_state.delay()
    remaining = list(SeenSignature.objects.values_list("digest", flat=True))
    assert len(remaining) == 1
    assert remaining != ["0" * 64]


def test_otp04_the_same_code_sent_at_once_from_four_connections_is_accepted_once(duo, vpn_person):
    """Four VPN requests with one good code race for the person's row: one allow, three deny."""
    code = fresh_code(app_device(vpn_person))
    start = threading.Barrier(4)
    results = []

    def call(n):
        start.wait()
        # A different ipaddr per request, so no two signatures are the same (that would be a replay, API-02).
        answer = duo().auth(factor="passcode", username="vpnuser", passcode=code, ipaddr=f"10.0.0.{n}")
        results.append(answer["result"])

    threads = [threading.Thread(target=call, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == ["allow", "deny", "deny", "deny"]
    assert AuditEvent.objects.filter(action="signin.second_factor_ok", subject=vpn_person).count() == 1


def test_api07_a_connection_the_server_ended_between_checks_is_replaced_before_the_next(
    client, integration, vpn_person
):
    """The view's database connection is terminated between two checks (a server restart, an idle timeout): the next
    check sees the server's goodbye on the idle socket before its first statement and answers on a new connection."""
    from vpn.tests.test_query_count import signed_auth

    def check(n, passcode):
        params = {"factor": "passcode", "username": "vpnuser", "passcode": passcode, "ipaddr": f"10.0.0.{n}"}
        return signed_auth(client, integration, params)

    code = fresh_code(app_device(vpn_person))
    assert json.loads(check(1, code).content)["response"]["result"] == "allow"
    ended = connection.connection.info.backend_pid
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], autocommit=True
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [ended])
        for _ in range(200):  # until the backend has gone (and closed its end)
            if not admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [ended]).fetchone():
                break
            time.sleep(0.05)
    again = check(2, code)  # the same code again, on a new connection: refused as used (OTP-04), not an error
    assert again.status_code == 200 and json.loads(again.content)["response"]["result"] == "deny"
    assert connection.connection.info.backend_pid != ended
    answered = check(3, wrong_code(app_device(vpn_person)))
    assert answered.status_code == 200 and json.loads(answered.content)["response"]["result"] == "deny"
    assert AuditEvent.objects.filter(action="signin.second_factor_failed", subject=vpn_person).count() == 2


def _duo_outcome(call) -> str:
    """``allow`` or ``deny`` in Duo's answer shape, ``error`` for a 5xx in Duo's error shape; anything else, named."""
    try:
        answer = call()
    except RuntimeError as error:
        data = error.data if isinstance(error.data, dict) else json.loads(error.data)
        if error.status >= 500 and data["stat"] == "FAIL" and isinstance(data["code"], int) and data["message"]:
            return "error"
        return f"unexpected error {error.status}: {data}"
    except Exception as error:  # a hang (the client's timeout), a reset connection, a server gone
        return f"no answer: {error!r}"
    if answer == {"result": "deny", "status": "deny", "status_msg": services.DENIED}:
        return "deny"
    if answer["result"] == "allow" and answer["status"] == "allow":
        return "allow"
    return f"unexpected answer: {answer}"


def test_api07_connections_dropped_while_checks_are_in_flight_fail_closed_and_checks_resume(duo, busy_people, settings):
    """Six threads send passcode checks without pause while another keeps ending the server's database connections,
    most of them mid-request (``vpn.tests.faults``). No wrong code and no refused person is ever allowed, a good code
    at most once, every answer is a deny or Duo's error shape; once the killing stops, a good code is allowed again."""
    # Back-off and lockout would soon refuse every code of the people sent wrong ones: with them off, every wrong
    # code is compared and its failure written, under fault like the rest.
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    settings.LOCKOUT_THRESHOLD = 10**6
    clients = [duo(timeout=30) for _ in busy_people.names]

    def send(n_thread, n, username, code):
        ipaddr = f"10.{n_thread}.{n // 256}.{n % 256}"  # no two requests sign the same (API-02)
        return _duo_outcome(
            partial(clients[n_thread].auth, factor="passcode", username=username, passcode=code, ipaddr=ipaddr)
        )

    answers, ended = checks_under_fault(send, busy_people)
    assert_failed_closed(answers, busy_people)
    # The fault hit the busy server: connections were ended and checks in flight failed with them.
    assert ended and any(a[3] == "error" for a in answers), (ended, Counter(a[3] for a in answers))
    assert audit.verify_chain() is None

    # The killing has stopped: a good code is allowed again within a few checks.
    client, later = duo(timeout=30), busy_people.later
    outcomes = []
    for n in range(3):
        code = fresh_code(app_device(later))
        check = partial(client.auth, factor="passcode", username=later.username, passcode=code, ipaddr=f"10.9.9.{n}")
        outcomes.append(_duo_outcome(check))
        if outcomes[-1] == "allow":
            break
    assert outcomes[-1] == "allow" and set(outcomes) <= {"allow", "error"}, outcomes
