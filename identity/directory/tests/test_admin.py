"""The desk's view of a person from the directory: which kind of account it is, and details it cannot change."""

import pytest
from django.urls import reverse
from django.utils.html import escape

from helpdesk import errors as desk_errors
from identity.directory import people
from identity.models import AuditEvent, User

from .conftest import SYNC

pytestmark = pytest.mark.django_db


def test_the_person_page_says_which_kind_of_account_it_is(desk_client, record, make_user):
    people.apply_record(record(), origin=SYNC)
    person = User.objects.get(username="asmith")
    page = desk_client.get(reverse("admin:identity_user_change", args=[person.pk])).content.decode()
    assert "Directory (LDAP / Active Directory)" in page and 'name="email"' not in page
    local = make_user("local1")
    page = desk_client.get(reverse("admin:identity_user_change", args=[local.pk])).content.decode()
    assert "Local account" in page


def test_the_desk_cannot_change_what_the_directory_owns(desk_client, staff_member, check_for, record):
    people.apply_record(record(), origin=SYNC)
    person = User.objects.get(username="asmith")
    check_for(person, staff_member)
    url = reverse("admin:helpdesk_action", args=[person.pk, "change_details"])
    response = desk_client.post(
        url,
        {
            "email": "evil@example.com",
            "first_name": "Alice",
            "last_name": "Smith",
            "department": "Radiology",
            "reason": "INC-1",
        },
    )
    assert response.status_code == 200
    assert escape(desk_errors.DETAILS_FROM_DIRECTORY) in response.content.decode()
    person.refresh_from_db()
    assert person.email == "asmith@example.edu"
    assert not AuditEvent.objects.filter(subject=person, action="person.details_changed").exists()
