"""The sync in the admin: the runs (read-only), "Sync now" for superusers, a held run's Apply / Discard, and the
desk's "Sync from the directory" on a person's page; each audited."""

import pytest
from django.urls import reverse

from config.celery import app
from devices.tests.test_phone_worker import free_port, use_broker
from helpdesk.tests.conftest import superuser  # noqa: F401
from identity.directory import sync
from identity.directory.models import DirectorySyncRun
from identity.models import AuditEvent, User

from .test_sync import four_leave  # noqa: F401

pytestmark = pytest.mark.django_db

RUNS = reverse("admin:directory_directorysyncrun_changelist")


@pytest.fixture
def root_client(client, superuser, sign_in):  # noqa: F811
    sign_in(client, superuser)
    return client


def test_sync_now_for_superusers(root_client, superuser, ldap_directory, django_capture_on_commit_callbacks):  # noqa: F811
    page = root_client.get(RUNS).content.decode()
    assert "Sync now" in page
    with django_capture_on_commit_callbacks(execute=True):
        response = root_client.post(reverse("admin:directory_sync_now"), follow=True)
    assert "A sync of everyone was queued" in response.content.decode()
    run = DirectorySyncRun.objects.get()
    assert (run.trigger, run.triggered_by, run.status) == ("user", superuser, "applied")
    assert run.created > 0
    assert AuditEvent.objects.filter(action="directory.sync_requested", actor=superuser).exists()
    assert "applied" in root_client.get(RUNS).content.decode().lower()


def test_the_desk_sees_runs_but_cannot_start_or_decide(desk_client, four_leave, settings):  # noqa: F811
    settings.DIRECTORY_MAX_DEACTIVATIONS = 3
    held = sync.sync_directory()
    page = desk_client.get(RUNS).content.decode()
    assert "Sync now" not in page
    assert desk_client.post(reverse("admin:directory_sync_now")).status_code == 403
    page = desk_client.get(reverse("admin:directory_directorysyncrun_change", args=[held.pk])).content.decode()
    assert "wim" in page and 'value="apply"' not in page
    desk_client.post(reverse("admin:directory_sync_decide", args=[held.pk]), {"decision": "apply"})
    held.refresh_from_db()
    assert held.status == "held"
    assert User.objects.filter(username__in=four_leave, is_active=True).count() == 4


def test_a_superuser_applies_a_held_run_from_its_page(
    root_client,
    superuser,  # noqa: F811
    four_leave,  # noqa: F811
    settings,
    django_capture_on_commit_callbacks,
):
    settings.DIRECTORY_MAX_DEACTIVATIONS = 3
    held = sync.sync_directory()
    url = reverse("admin:directory_directorysyncrun_change", args=[held.pk])
    page = root_client.get(url).content.decode()
    assert all(name in page for name in four_leave) and 'value="apply"' in page and 'value="discard"' in page
    decide = reverse("admin:directory_sync_decide", args=[held.pk])
    # The request decides and queues; the worker applies (held back here, to see the page in between).
    with django_capture_on_commit_callbacks() as queued:
        response = root_client.post(decide, {"decision": "apply"}, follow=True)
    page = response.content.decode()
    assert "Applying this run was queued" in page and "Being applied" in page and 'value="apply"' not in page
    assert User.objects.filter(username__in=four_leave, is_active=True).count() == 4
    response = root_client.post(decide, {"decision": "discard"}, follow=True)
    assert "no longer held" in response.content.decode()
    (apply,) = queued
    apply()
    held.refresh_from_db()
    assert (held.status, held.decided_by, held.deactivated) == ("applied", superuser, 4)
    assert not User.objects.filter(username__in=four_leave, is_active=True).exists()


@pytest.mark.django_db(transaction=True)
def test_apply_with_the_worker_s_queue_down_ends_the_run_with_a_sentence_not_a_500(
    root_client,
    superuser,  # noqa: F811
    four_leave,  # noqa: F811
    settings,
):
    settings.DIRECTORY_MAX_DEACTIVATIONS = 3
    held = sync.sync_directory()
    previous = app.conf.broker_url
    use_broker(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there: Redis is down
    app.conf.task_always_eager = False  # the autouse fixture sets it back
    try:
        response = root_client.post(
            reverse("admin:directory_sync_decide", args=[held.pk]), {"decision": "apply"}, follow=True
        )
    finally:
        use_broker(previous)
    assert response.status_code == 200
    assert "The worker&#x27;s queue could not be reached" in response.content.decode()
    # The decision was taken and could not be carried out: the run has ended, never "running" with no task for it.
    held.refresh_from_db()
    assert (held.status, held.decided_by) == ("failed", superuser)
    assert "queue could not be reached" in held.error_text and "Nobody was changed." in held.error_text
    assert User.objects.filter(username__in=four_leave, is_active=True).count() == 4
    event = AuditEvent.objects.get(action="directory.sync_run_applied")
    assert (event.actor, event.details["sync_outcome"]) == (superuser, "failed")


def test_a_superuser_discards_a_held_run(root_client, superuser, four_leave, settings):  # noqa: F811
    settings.DIRECTORY_MAX_DEACTIVATIONS = 3
    held = sync.sync_directory()
    root_client.post(reverse("admin:directory_sync_decide", args=[held.pk]), {"decision": "discard"})
    held.refresh_from_db()
    assert (held.status, held.decided_by) == ("discarded", superuser)
    assert User.objects.filter(username__in=four_leave, is_active=True).count() == 4


def test_a_decision_that_is_neither_apply_nor_discard_changes_nothing(root_client, four_leave, settings):  # noqa: F811
    settings.DIRECTORY_MAX_DEACTIVATIONS = 3
    held = sync.sync_directory()
    decide = reverse("admin:directory_sync_decide", args=[held.pk])
    for data in ({}, {"decision": "Apply"}, {"decision": "yes"}):
        response = root_client.post(decide, data, follow=True)
        assert "Nothing was decided: choose Apply or Discard." in response.content.decode()
    held.refresh_from_db()
    assert (held.status, held.decided_by) == ("held", None)
    assert User.objects.filter(username__in=four_leave, is_active=True).count() == 4


@pytest.mark.django_db(transaction=True)
def test_sync_now_with_the_worker_s_queue_down_is_a_sentence_not_a_500(root_client, ldap_directory):
    previous = app.conf.broker_url
    use_broker(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there: Redis is down
    app.conf.task_always_eager = False  # the autouse fixture sets it back
    try:
        response = root_client.post(reverse("admin:directory_sync_now"), follow=True)
    finally:
        use_broker(previous)
    assert response.status_code == 200
    page = response.content.decode()
    assert "The worker&#x27;s queue could not be reached, so no sync was started" in page
    assert "A sync of everyone was queued" not in page
    assert not DirectorySyncRun.objects.exists()


def test_the_desk_syncs_a_person_from_their_page(desk_client, staff_member, ldap_directory):
    sync.sync_directory(person="carol")
    carol = User.objects.get(username="carol")
    ldap_directory.modify(carol.directory_dn, departmentNumber="Oncology")
    page = desk_client.get(reverse("admin:identity_user_change", args=[carol.pk])).content.decode()
    assert "Sync from the directory" in page
    response = desk_client.post(reverse("admin:helpdesk_directory_sync", args=[carol.pk]), follow=True)
    assert "1 updated" in response.content.decode()
    carol.refresh_from_db()
    assert carol.department == "Oncology"
    event = AuditEvent.objects.get(action="directory.sync_requested")
    assert (event.actor, event.subject, event.details["person"]) == (staff_member, carol, "carol")
    ldap_directory.modify(carol.directory_dn, departmentNumber="Radiology")  # the named people keep their state


def held_run_of(count: int, make_user) -> DirectorySyncRun:
    """A held run listing ``count`` people, as a run finding them all gone would: the four the directory lost
    (``four_leave``, with DIRECTORY_MAX_DEACTIVATIONS under 4), and more made here ("gone000", ...)."""
    held = sync.sync_directory()
    assert held.status == DirectorySyncRun.Status.HELD
    more = [make_user(f"gone{n:03}", department="Physics") for n in range(count - len(held.would_deactivate))]
    listed = held.would_deactivate + [{"id": p.pk, "username": p.username, "reason": sync.LEFT} for p in more]
    DirectorySyncRun.objects.filter(pk=held.pk).update(would_deactivate=listed)
    return held


def test_a_held_run_lists_who_it_would_deactivate_a_hundred_a_page(root_client, four_leave, settings, make_user):  # noqa: F811
    settings.DIRECTORY_MAX_DEACTIVATIONS = 3
    held = held_run_of(250, make_user)
    url = reverse("admin:directory_directorysyncrun_change", args=[held.pk])

    def rows(page: str) -> int:
        return page.split("<tbody>")[1].split("</tbody>")[0].count("<tr>")

    first = root_client.get(url).content.decode()
    assert "Held: 250 people would be deactivated" in first
    assert "This run would deactivate 250 people; this page lists numbers 1 to 100, 100 a page." in first
    assert rows(first) == 100 and "Page 1 of 3" in first and "Previous page" not in first
    assert 'href="?page=2">Next page' in first and 'value="apply"' in first
    assert "Apply: deactivate 250 people" in first
    last = root_client.get(url, {"page": 3}).content.decode()
    assert rows(last) == 50 and "numbers 201 to 250" in last and "gone245" in last and "gone000" not in last
    assert 'href="?page=2">Previous page' in last and "Next page" not in last and 'value="discard"' in last
    assert "numbers 201 to 250" in root_client.get(url, {"page": "99"}).content.decode()
