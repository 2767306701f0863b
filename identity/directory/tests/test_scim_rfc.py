"""What SCIM clients rely on beyond the basics: externalId kept, answered and filtered on (Entra ID matches people
by it), a DELETEd person gone for clients (404) while the row stays (DIR-02), and POST /Users/.search."""

import pytest

from identity.models import AuditEvent, User
from testsupport import details_of

from .test_scim import created, entra_user, patch

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


def test_external_id_is_kept_answered_and_filtered_on_case_exactly(scim):
    body = created(scim, externalId="AS-0042")
    assert body["externalId"] == "AS-0042"
    person = User.objects.get(directory_id=body["id"])
    assert person.directory_external_id == "AS-0042"
    assert (
        AuditEvent.objects.get(action="directory.person_created", subject=person).details["values"][
            "directory_external_id"
        ]
        == "AS-0042"
    )
    created(scim, "bjones", externalId="BJ-0007")

    status, found = scim("GET", '/Users?filter=externalId eq "AS-0042"')
    assert status == 200 and [item["id"] for item in found["Resources"]] == [body["id"]]
    # externalId is caseExact (RFC 7643 §3.1), unlike userName.
    assert scim("GET", '/Users?filter=externalId eq "as-0042"')[1]["totalResults"] == 0
    assert scim("GET", '/Users?filter=externalId ne "AS-0042"')[1]["totalResults"] == 1
    assert scim("GET", '/Users?filter=externalId sw "AS"')[1]["totalResults"] == 1

    # A PATCH that does not mention it keeps it; one that does changes it, audited.
    scim("PATCH", f"/Users/{body['id']}", patch({"op": "replace", "path": "displayName", "value": "Al"}))
    person.refresh_from_db()
    assert person.directory_external_id == "AS-0042"
    status, changed = scim(
        "PATCH", f"/Users/{body['id']}", patch({"op": "replace", "path": "externalId", "value": "AS-1"})
    )
    assert status == 200 and changed["externalId"] == "AS-1"
    moved = AuditEvent.objects.filter(action="directory.person_updated", subject=person).order_by("sequence").last()
    assert moved.details["changes"] == {"directory_external_id": {"from": "AS-0042", "to": "AS-1"}}
    # A group change keeps it.
    scim("PATCH", "/Groups/vpn", patch({"op": "add", "path": "members", "value": [{"value": body["id"]}]}))
    person.refresh_from_db()
    assert person.directory_external_id == "AS-1" and person.vpn_access == User.VpnAccess.APPROVED


def test_a_deleted_person_is_gone_for_clients_but_stays_here(scim, scim_client):
    gone, kept = created(scim)["id"], created(scim, "bjones")["id"]
    # Deactivated first by active: false (still there, answered inactive), then deleted.
    scim("PATCH", f"/Users/{gone}", patch({"op": "replace", "path": "active", "value": False}))
    status, body = scim("GET", f"/Users/{gone}")
    assert status == 200 and body["active"] is False
    assert scim("DELETE", f"/Users/{gone}")[0] == 204

    for method, body in [
        ("GET", None),
        ("PUT", entra_user()),
        ("DELETE", None),
        ("PATCH", patch({"op": "replace", "path": "active", "value": True})),
    ]:
        status, error = scim(method, f"/Users/{gone}", body)
        assert status == 404, (method, error)
    status, listed = scim("GET", "/Users")
    assert [item["id"] for item in listed["Resources"]] == [kept]
    assert scim("GET", '/Users?filter=userName eq "asmith"')[1]["totalResults"] == 0

    person = User.objects.get(directory_id=gone)  # the row and its audit trail stay (DIR-02)
    assert not person.is_active
    deleted = AuditEvent.objects.get(action="directory.scim_person_deleted", subject=person)
    assert details_of(deleted) == {"scim_client": scim_client.pk}
    # The deleted person is no conflict: created again, they come back as the same person (row, devices kept).
    status, back = scim("POST", "/Users", entra_user(name={"givenName": "Alice", "familyName": "Back"}))
    assert status == 201 and back["id"] == gone and back["active"] is True
    person.refresh_from_db()
    assert person.is_active and person.last_name == "Back"
    assert AuditEvent.objects.filter(action="directory.person_reactivated", subject=person).exists()
    assert scim("GET", f"/Users/{gone}")[0] == 200
    # Someone merely deactivated (not deleted) still holds their userName.
    scim("PATCH", f"/Users/{kept}", patch({"op": "replace", "path": "active", "value": False}))
    assert scim("POST", "/Users", entra_user("bjones"))[0] == 409


def test_post_search_finds_people_as_a_get_does(scim):
    alice = created(scim)["id"]
    created(scim, "bjones")
    status, found = scim(
        "POST",
        "/Users/.search",
        {
            "schemas": [SEARCH],
            "filter": 'userName eq "asmith"',
            "attributes": ["userName"],
            "startIndex": 1,
            "count": 10,
        },
    )
    assert status == 200, found
    assert found["totalResults"] == 1 and found["Resources"][0]["id"] == alice
    assert "emails" not in found["Resources"][0] and found["Resources"][0]["userName"] == "asmith"
    status, page = scim("POST", "/Users/.search", {"schemas": [SEARCH], "startIndex": 2, "count": 1})
    assert (page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (2, 2, 1)

    status, error = scim("POST", "/Users/.search", {"schemas": [SEARCH], "filter": 'title eq "x"'})
    assert status == 400 and error["scimType"] == "invalidFilter"
    status, error = scim("GET", "/Users/.search")
    assert status == 405
