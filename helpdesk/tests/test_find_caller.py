"""Finding the caller on the people list: ID first, names, email, phone numbers in any format; list columns and
filters; a fixed number of queries however many people or devices."""

import re

import pytest
from django.urls import reverse
from django.utils import timezone

from devices import services as device_services
from devices.models import AuthenticatorAppDevice
from helpdesk.selectors import as_e164

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

LIST = "/admin/identity/user/"


def found(client, **query) -> list[str]:
    response = client.get(LIST, query)
    assert response.status_code == 200
    return [person.username for person in response.context["cl"].result_list]


@pytest.mark.parametrize(
    "typed", ["(617) 432-2000", "617-432-2000", "617.432.2000", "+1 617 432 2000", "16174322000", "+16174322000"]
)
def test_phone_numbers_in_any_common_format_read_as_e164(typed):
    assert as_e164(typed) == "+16174322000"


def test_short_or_wordy_searches_are_not_phone_numbers():
    assert as_e164("1234") == "" and as_e164("Jane Doe") == "" and as_e164("A0012345") == ""


def test_search_by_phone_number_finds_current_and_retired_numbers(desk_client, caller, make_user, enroll):
    assert found(desk_client, q="(617) 432-2000") == ["caller1"]
    other = make_user("mover")
    registration = enroll(other, number="+16174325555")
    enroll(other, kind="tablet", platform="android")
    device_services.report_lost(registration, actor=other, verified_at=timezone.now())  # the number is retired with it
    assert found(desk_client, q="617 432 5555") == ["mover"]


def test_search_by_exact_id_comes_alone_then_names_and_email(desk_client, caller, make_user):
    make_user("caller10", first_name="Other", last_name="Person")
    assert found(desk_client, q="caller1") == ["caller1"]
    assert set(found(desk_client, q="calle")) == {"caller1", "caller10"}
    assert found(desk_client, q="Cal Ler") == ["caller1"]
    assert found(desk_client, q="Ler") == ["caller1"]
    assert found(desk_client, q="caller1@example.edu") == ["caller1"]


def test_list_columns_and_filters(desk_client, caller, make_user):
    make_user("nodevice", department="")
    page = desk_client.get(LIST)
    rows = {p.username: p for p in page.context["cl"].result_list}
    assert rows["caller1"].working_device_count == 1 and rows["nodevice"].working_device_count == 0
    assert "nodevice" in found(desk_client, enrolled="no") and "caller1" not in found(desk_client, enrolled="no")
    assert found(desk_client, department="Radiology") == ["caller1"]
    assert "caller1" in found(desk_client, device_kind="mobile")
    assert found(desk_client, locked="yes") == [] and found(desk_client, held="yes") == []
    # People without a department get no filter link (an empty link text is an axe "link-name" violation).
    assert b'?department=">' not in page.content


def test_people_list_and_person_page_queries_do_not_grow(
    desk_client, caller, make_user, enroll, assert_max_num_statements
):
    url = reverse("admin:identity_user_change", args=[caller.pk])
    for n in range(3):
        enroll(caller, kind="tablet", platform="android")
        enroll(make_user(f"extra{n}"))
    with assert_max_num_statements(14):
        assert desk_client.get(LIST).status_code == 200
    with assert_max_num_statements(24):
        assert desk_client.get(url).status_code == 200
    with assert_max_num_statements(14):
        assert desk_client.get(LIST, {"q": "(617) 432-2000"}).status_code == 200


def test_the_list_says_enrolled_by_the_projects_one_rule(desk_client, caller, make_user, enroll):
    """ "Enrolled" on the people list and the person page is the view devices_working_registration, as the reports
    and the campaigns' progress read it: a device in use whose factor is confirmed. A retired device, a setup never
    finished, or a device in use whose factor is no longer confirmed makes nobody enrolled."""
    now = timezone.now()
    retired = make_user("retired1")
    device_services.report_lost(enroll(retired), actor=retired, verified_at=now)
    pending = make_user("pending1")
    device_services.start_enrollment(pending, kind="tablet", verified_at=now)
    unconfirmed = make_user("unconfirmed1")
    registration = enroll(unconfirmed)
    # Still marked in use, but its app is no longer confirmed: the rule's view leaves it out.
    AuthenticatorAppDevice.objects.filter(pk=registration.app_device_id).update(confirmed=False)

    changelist = desk_client.get(LIST).context["cl"]
    rows = {person.username: person for person in changelist.result_list}
    shown = {
        name: changelist.model_admin.enrolled(rows[name])
        for name in ("caller1", "retired1", "pending1", "unconfirmed1")
    }
    assert shown == {"caller1": True, "retired1": False, "pending1": False, "unconfirmed1": False}
    assert rows["unconfirmed1"].working_device_count == 0 and rows["caller1"].working_device_count == 1
    not_enrolled = found(desk_client, enrolled="no")
    assert {"retired1", "pending1", "unconfirmed1"} <= set(not_enrolled) and "caller1" not in not_enrolled
    enrolled = found(desk_client, enrolled="yes")
    assert "caller1" in enrolled and not {"retired1", "pending1", "unconfirmed1"} & set(enrolled)

    page = desk_client.get(reverse("admin:identity_user_change", args=[unconfirmed.pk])).content.decode()
    assert "<dt>Enrolled</dt><dd>No working device</dd>" in page
    page = desk_client.get(reverse("admin:identity_user_change", args=[caller.pk])).content.decode()
    assert "<dt>Enrolled</dt><dd>Yes, 1 working device</dd>" in page


def test_the_locked_filter_and_column_follow_one_rule(desk_client, make_user, settings):
    """A lock whose time is up is over (User.lock_in_force): the filter and the column both say so."""
    from datetime import timedelta

    from freezegun import freeze_time

    from identity import services as identity_services

    settings.LOCKOUT_THRESHOLD, settings.LOCKOUT_AUTO_UNLOCK_MINUTES = 1, 30
    lapsed, locked = make_user("lapsed1"), make_user("locked1")
    with freeze_time(timezone.now() - timedelta(hours=1)):
        identity_services.record_second_factor_failure(lapsed, factor="totp", ip=None)
    identity_services.record_second_factor_failure(locked, factor="totp", ip=None)
    lapsed.refresh_from_db()
    assert lapsed.locked_at is not None and not lapsed.is_locked

    def listed(query):
        page = desk_client.get(f"{reverse('admin:identity_user_changelist')}?{query}").content.decode()
        rows = {
            name: re.search(rf">{name}<.*?field-locked\"><img[^>]*alt=\"(\w+)\"", page, re.S)
            for name in ("lapsed1", "locked1")
        }
        return {name: match.group(1) for name, match in rows.items() if match}

    assert listed("locked=yes") == {"locked1": "True"}
    assert listed("locked=no") == {"lapsed1": "False"}
