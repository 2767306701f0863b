"""Finding the caller on the people list: ID first, names, email, phone numbers in any format; list columns and
filters; a fixed number of queries however many people or devices."""

import pytest
from django.urls import reverse
from django.utils import timezone

from devices import services as device_services
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
    assert rows["caller1"].active_device_count == 1 and rows["nodevice"].active_device_count == 0
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
