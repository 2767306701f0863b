"""SCIM 2.0 (RFC 7643/7644) as Entra ID and Okta speak it: people created, found, changed, deactivated, their
roles and VPN access set through groups, every change through the people service and attributed to the client."""

import hashlib
import json
import re

import pytest
from django.db import connection

from helpdesk.tests.conftest import auditor, staff_member, superuser  # noqa: F401 (fixtures)
from identity.directory import scim_clients
from identity.directory.models import ScimClient
from identity.models import AuditEvent, User
from testsupport import details_of

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"


def entra_user(user_name="asmith", **changes):
    """A POST /Users as Entra ID's default attribute mapping sends it."""
    return {
        "schemas": [USER_SCHEMA, ENTERPRISE],
        "externalId": "asmith",
        "userName": user_name,
        "active": True,
        "displayName": "Alice Smith",
        "emails": [{"primary": True, "type": "work", "value": f"{user_name}@example.edu"}],
        "name": {"formatted": "Alice Smith", "familyName": "Smith", "givenName": "Alice"},
        "phoneNumbers": [{"type": "mobile", "value": "+1 202 555 0100"}],
        ENTERPRISE: {"department": "Radiology"},
        **changes,
    }


def patch(*operations):
    return {"schemas": [PATCH_SCHEMA], "Operations": list(operations)}


def created(scim, user_name="asmith", **changes) -> dict:
    status, body = scim("POST", "/Users", entra_user(user_name, **changes))
    assert status == 201, body
    return body


def test_discovery_documents(scim):
    status, config = scim("GET", "/ServiceProviderConfig")
    assert status == 200 and config["patch"]["supported"] and config["filter"]["supported"]
    assert not config["bulk"]["supported"] and config["authenticationSchemes"][0]["type"] == "oauthbearertoken"
    status, types = scim("GET", "/ResourceTypes")
    assert {item["id"] for item in types["Resources"]} == {"User", "Group"}
    user_type = next(item for item in types["Resources"] if item["id"] == "User")
    assert user_type["schemaExtensions"][0]["schema"] == ENTERPRISE
    status, schemas = scim("GET", "/Schemas")
    assert {item["id"] for item in schemas["Resources"]} >= {USER_SCHEMA, ENTERPRISE}
    status, schema = scim("GET", f"/Schemas/{USER_SCHEMA}")
    assert status == 200 and any(attribute["name"] == "userName" for attribute in schema["attributes"])


def test_create_find_page_read_and_replace_a_person(scim, scim_client):
    body = created(scim)
    person = User.objects.get(username="asmith")
    assert body["id"] == person.directory_id and body["userName"] == "asmith"
    assert body["meta"]["location"].endswith(f"/scim/v2/Users/{person.directory_id}")
    assert (person.source, person.first_name, person.last_name, person.email, person.department) == (
        User.Source.SCIM,
        "Alice",
        "Smith",
        "asmith@example.edu",
        "Radiology",
    )
    assert not person.has_usable_password() and person.is_active
    event = AuditEvent.objects.get(action="directory.person_created", subject=person)
    assert event.details["scim_client"] == scim_client.pk

    # Entra ID's and Okta's first question, and paging.
    status, found = scim("GET", '/Users?filter=userName eq "ASMITH"')
    assert status == 200 and found["totalResults"] == 1 and found["Resources"][0]["id"] == person.directory_id
    for name in ("bjones", "cwu"):
        created(scim, name)
    status, page = scim("GET", "/Users?startIndex=2&count=1")
    assert (page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (3, 2, 1)
    assert page["Resources"][0]["userName"] == "bjones"
    status, none = scim("GET", '/Users?filter=userName eq "nobody"')
    assert status == 200 and none["totalResults"] == 0 and not none.get("Resources")

    status, read = scim("GET", f"/Users/{person.directory_id}")
    assert status == 200 and read[ENTERPRISE]["department"] == "Radiology" and read["emails"][0]["primary"]

    status, replaced = scim(
        "PUT", f"/Users/{person.directory_id}", entra_user(**{ENTERPRISE: {"department": "Oncology"}})
    )
    assert status == 200 and replaced[ENTERPRISE]["department"] == "Oncology"
    person.refresh_from_db()
    assert person.department == "Oncology"
    moved = AuditEvent.objects.get(action="directory.person_updated", subject=person)
    assert moved.details["changes"]["department"] == {"from": "Radiology", "to": "Oncology"}
    assert moved.details["scim_client"] == scim_client.pk

    # The same userName again is a conflict, and so is a local account's ID: neither is taken over.
    status, error = scim("POST", "/Users", entra_user())
    assert status == 409 and error["scimType"] == "uniqueness" and error["status"] == "409"
    User.objects.create_user("local1", password="x")  # noqa: S106
    status, error = scim("POST", "/Users", entra_user("local1"))
    assert status == 409 and User.objects.get(username="local1").source == User.Source.LOCAL
    # Local (and LDAP) accounts are neither listed nor reachable over SCIM.
    assert scim("GET", '/Users?filter=userName eq "local1"')[1]["totalResults"] == 0
    assert scim("GET", "/Users")[1]["totalResults"] == 3


def test_a_rename_never_takes_a_user_name_held_in_another_case(scim):
    """userName is case-insensitive (RFC 7643 §4.1.1): a PUT or PATCH renaming someone to "Admin" beside a local
    "admin" (or beside another SCIM person) is refused 409 uniqueness and changes nothing, as a POST is."""
    User.objects.create_user("admin", password="x")  # noqa: S106
    scim_id = created(scim)["id"]
    created(scim, "bjones")
    attempts = [
        ("PUT", entra_user("Admin")),
        ("PATCH", patch({"op": "replace", "path": "userName", "value": "ADMIN"})),
        ("PATCH", patch({"op": "Replace", "value": {"userName": "BJones"}})),
    ]
    before = AuditEvent.objects.count()
    for method, body in attempts:
        status, error = scim(method, f"/Users/{scim_id}", body)
        assert status == 409 and error["scimType"] == "uniqueness", (method, body, error)
    assert User.objects.get(directory_id=scim_id).username == "asmith"
    assert sorted(User.objects.values_list("username", flat=True)) == ["admin", "asmith", "bjones"]
    assert AuditEvent.objects.count() == before
    # Their own userName in another case is theirs.
    status, body = scim("PATCH", f"/Users/{scim_id}", patch({"op": "replace", "path": "userName", "value": "ASmith"}))
    assert status == 200 and body["userName"] == "ASmith"


def test_entra_id_patches_with_its_quirks(scim, scim_client):
    scim_id = created(scim)["id"]
    # "Replace" capitalised, and a boolean as the string "False".
    status, body = scim("PATCH", f"/Users/{scim_id}", patch({"op": "Replace", "path": "active", "value": "False"}))
    assert status == 200 and body["active"] is False
    person = User.objects.get(directory_id=scim_id)
    assert not person.is_active and person.deactivated_at is not None
    event = AuditEvent.objects.get(action="directory.person_deactivated", subject=person)
    assert event.details["scim_client"] == scim_client.pk
    # A value object with no path, its keys attribute paths, "True" as a string: reactivated and renamed at once.
    status, body = scim(
        "PATCH", f"/Users/{scim_id}", patch({"op": "Replace", "value": {"active": "True", "name.givenName": "Alicia"}})
    )
    assert status == 200 and body["active"] is True and body["name"]["givenName"] == "Alicia"
    # Entra ID sets typed values by filter, the extension by its URN.
    status, body = scim(
        "PATCH",
        f"/Users/{scim_id}",
        patch(
            {"op": "Add", "path": 'emails[type eq "work"].value', "value": "alicia@example.edu"},
            {"op": "Replace", "path": f"{ENTERPRISE}:department", "value": "Neurology"},
            {"op": "Add", "path": 'phoneNumbers[type eq "mobile"].value', "value": "+1 202 555 0101"},
        ),
    )
    assert status == 200, body
    person.refresh_from_db()
    assert (person.is_active, person.first_name, person.email, person.department) == (
        True,
        "Alicia",
        "alicia@example.edu",
        "Neurology",
    )
    assert AuditEvent.objects.filter(action="directory.person_reactivated", subject=person).exists()


def test_okta_deactivates_with_active_false_and_delete_deactivates_too(scim):
    okta = created(scim, "okta1")["id"]
    status, body = scim("PATCH", f"/Users/{okta}", patch({"op": "replace", "value": {"active": False}}))
    assert status == 200 and not User.objects.get(directory_id=okta).is_active

    entra = created(scim, "entra1")["id"]
    status, body = scim("DELETE", f"/Users/{entra}")
    assert status == 204 and body is None
    person = User.objects.get(directory_id=entra)  # never deleted: the audit log keeps pointing at them
    assert not person.is_active
    event = AuditEvent.objects.get(action="directory.person_deactivated", subject=person)
    assert event.details["reason"] == "scim_delete"


def test_dir_02_a_full_replace_that_leaves_active_out_changes_nobodys_active(scim):
    """A PUT without ``active`` (a client pushing a new department as a full replace) brings no leaver back, and
    a PUT that says ``active: true`` does, as a re-enabled person's should."""
    leaver = created(scim, "leaver1")["id"]
    status, body = scim("PATCH", f"/Users/{leaver}", patch({"op": "replace", "path": "active", "value": "False"}))
    assert status == 200 and not User.objects.get(directory_id=leaver).is_active
    silent = entra_user("leaver1", **{ENTERPRISE: {"department": "Oncology"}})
    del silent["active"]

    status, body = scim("PUT", f"/Users/{leaver}", silent)
    person = User.objects.get(directory_id=leaver)
    assert status == 200 and body["active"] is False
    assert (person.is_active, person.department) == (False, "Oncology")
    assert not AuditEvent.objects.filter(action="directory.person_reactivated", subject=person).exists()

    stayer = created(scim, "stayer1")["id"]
    status, body = scim("PUT", f"/Users/{stayer}", silent | {"userName": "stayer1", "externalId": "stayer1"})
    assert status == 200 and User.objects.get(directory_id=stayer).is_active

    status, body = scim("PUT", f"/Users/{leaver}", silent | {"active": True})
    assert status == 200 and User.objects.get(directory_id=leaver).is_active


def test_groups_give_and_take_roles_and_vpn_access(scim, scim_client):
    alice, bob = created(scim)["id"], created(scim, "bjones")["id"]
    status, found = scim("GET", '/Groups?filter=displayName eq "Help desk"&excludedAttributes=members')
    assert status == 200 and found["totalResults"] == 1 and "members" not in found["Resources"][0]
    desk = found["Resources"][0]["id"]

    status, body = scim(
        "PATCH", f"/Groups/{desk}", patch({"op": "Add", "path": "members", "value": [{"value": alice}]})
    )
    assert status == 204
    person = User.objects.get(directory_id=alice)
    assert person.groups.filter(name="Help desk").exists() and person.is_staff
    granted = AuditEvent.objects.get(action="directory.role_granted", subject=person)
    assert details_of(granted) == {"scim_client": scim_client.pk, "role": "Help desk"}
    status, group = scim("GET", f"/Groups/{desk}")
    assert [member["value"] for member in group["members"]] == [alice]

    # Entra ID removes a member with a value list, not a path filter.
    status, body = scim(
        "PATCH", f"/Groups/{desk}", patch({"op": "Remove", "path": "members", "value": [{"value": alice}]})
    )
    assert status == 204
    person.refresh_from_db()
    assert not person.groups.exists() and not person.is_staff
    assert AuditEvent.objects.filter(action="directory.role_removed", subject=person).exists()

    # The VPN group is VPN access; an Okta push of a group here is matched by its name.
    status, body = scim(
        "POST",
        "/Groups",
        {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "VPN", "members": [{"value": bob}]},
    )
    assert status == 201 and body["id"] == "vpn"
    assert User.objects.get(directory_id=bob).vpn_access == User.VpnAccess.APPROVED
    status, body = scim("PATCH", "/Groups/vpn", patch({"op": "Remove", "path": f'members[value eq "{bob}"]'}))
    assert status == 204 and User.objects.get(directory_id=bob).vpn_access == User.VpnAccess.REVOKED

    # An unknown member changes nobody; an unknown group is refused.
    status, error = scim(
        "PATCH", "/Groups/vpn", patch({"op": "Add", "path": "members", "value": [{"value": alice}, {"value": "nope"}]})
    )
    assert status == 400 and error["scimType"] == "invalidValue"
    assert User.objects.get(directory_id=alice).vpn_access == User.VpnAccess.NONE
    status, error = scim("POST", "/Groups", {"displayName": "Domain Admins", "members": []})
    assert status == 400 and "Help desk" in error["detail"]


ACTIVE, INACTIVE = (patch({"op": "Replace", "path": "active", "value": value}) for value in ("True", "False"))


def test_dir_02_a_reactivated_scim_person_gets_back_the_vpn_access_their_group_gives(scim, scim_client):
    """Entra ID and Okta send a membership once, never again when they reactivate someone: a deactivation revokes
    VPN access (DIR-02) but keeps the membership, a reactivation gives back the access it gives, and a change to a
    deactivated person's membership is kept, not lost."""
    alice, bob = created(scim)["id"], created(scim, "bjones")["id"]
    vpn_of = lambda scim_id: User.objects.get(directory_id=scim_id).vpn_access  # noqa: E731
    joins = lambda scim_id: patch({"op": "Add", "path": "members", "value": [{"value": scim_id}]})  # noqa: E731
    assert scim("PATCH", "/Groups/vpn", joins(alice))[0] == 204 and vpn_of(alice) == User.VpnAccess.APPROVED

    assert scim("PATCH", f"/Users/{alice}", INACTIVE)[0] == 200 and vpn_of(alice) == User.VpnAccess.REVOKED
    assert [member["value"] for member in scim("GET", "/Groups/vpn")[1]["members"]] == [alice]
    assert scim("PATCH", f"/Users/{alice}", ACTIVE)[0] == 200 and vpn_of(alice) == User.VpnAccess.APPROVED
    back = AuditEvent.objects.filter(action="vpn_access.approved", subject__directory_id=alice).latest("sequence")
    assert back.details["scim_client"] == scim_client.pk and back.ip == "127.0.0.1"

    # Put in the group while deactivated: kept and audited, no VPN access until reactivated.
    assert scim("PATCH", f"/Users/{bob}", INACTIVE)[0] == 200
    assert scim("PATCH", "/Groups/vpn", joins(bob))[0] == 204 and vpn_of(bob) == User.VpnAccess.NONE
    joined = AuditEvent.objects.get(action="directory.vpn_group_joined", subject__directory_id=bob)
    assert details_of(joined) == {"scim_client": scim_client.pk}
    assert scim("PATCH", f"/Users/{bob}", ACTIVE)[0] == 200 and vpn_of(bob) == User.VpnAccess.APPROVED

    # Taken out while deactivated: back without VPN access.
    assert scim("PATCH", f"/Users/{alice}", INACTIVE)[0] == 200
    status, _ = scim("PATCH", "/Groups/vpn", patch({"op": "Remove", "path": f'members[value eq "{alice}"]'}))
    assert status == 204
    assert AuditEvent.objects.filter(action="directory.vpn_group_left", subject__directory_id=alice).exists()
    assert scim("PATCH", f"/Users/{alice}", ACTIVE)[0] == 200 and vpn_of(alice) == User.VpnAccess.REVOKED
    assert [member["value"] for member in scim("GET", "/Groups/vpn")[1]["members"]] == [bob]


def test_dir_04_a_role_taken_away_from_a_deactivated_scim_person_stays_away(scim, scim_client):
    """A role removed (or given) while the person is deactivated is removed (or given) then, audited, not left for
    a reactivation that never brings the membership again."""
    carol, dan = created(scim, "cwu")["id"], created(scim, "dlee")["id"]
    joins = lambda scim_id: patch({"op": "Add", "path": "members", "value": [{"value": scim_id}]})  # noqa: E731
    assert scim("PATCH", "/Groups/help-desk", joins(carol))[0] == 204
    for scim_id in (carol, dan):
        assert scim("PATCH", f"/Users/{scim_id}", INACTIVE)[0] == 200
    status, _ = scim("PATCH", "/Groups/help-desk", patch({"op": "Remove", "path": f'members[value eq "{carol}"]'}))
    assert status == 204
    assert scim("PATCH", "/Groups/auditor", joins(dan))[0] == 204
    removed = AuditEvent.objects.get(action="directory.role_removed", subject__directory_id=carol)
    assert details_of(removed) == {"scim_client": scim_client.pk, "role": "Help desk"}
    for scim_id in (carol, dan):
        assert scim("PATCH", f"/Users/{scim_id}", ACTIVE)[0] == 200
    carol_here, dan_here = User.objects.get(directory_id=carol), User.objects.get(directory_id=dan)
    assert not carol_here.groups.exists() and not carol_here.is_staff
    assert list(dan_here.groups.values_list("name", flat=True)) == ["Auditor"] and dan_here.is_staff


def test_bad_input_answers_in_scims_shape_and_changes_nothing(scim, settings):
    scim_id = created(scim)["id"]
    before = AuditEvent.objects.count()
    cases = [
        (("GET", "/Users?filter=userName eq"), 400, "invalidFilter"),
        (("GET", '/Users?filter=title eq "x"'), 400, "invalidFilter"),
        (("POST", "/Users", "{not json"), 400, "invalidSyntax"),
        (("POST", "/Users", "[]"), 400, "invalidSyntax"),
        (("POST", "/Users", {"schemas": [USER_SCHEMA], "name": {"givenName": "x"}}), 400, None),
        (("POST", "/Users", entra_user("gone", active=False)), 400, "invalidValue"),
        (("PATCH", f"/Users/{scim_id}", patch({"op": "bogus", "path": "active", "value": False})), 400, None),
        (("PATCH", f"/Users/{scim_id}", {"Operations": "x"}), 400, None),
        (("GET", "/Users?count=many"), 400, "invalidValue"),
        (("GET", '/Users?filter=userName eq "a%00"'), 400, "invalidValue"),
        (("GET", "/Users/a%00b"), 400, "invalidValue"),
        (("POST", "/Users", entra_user("nul\u0000")), 400, "invalidValue"),
        (("POST", "/Users", entra_user("long", name={"familyName": "S" * 151})), 400, "invalidValue"),
        (("PUT", f"/Users/{scim_id}", entra_user(**{ENTERPRISE: {"department": "D" * 201}})), 400, "invalidValue"),
        (("GET", "/Users/no-such-id"), 404, None),
        (("GET", "/Groups/no-such-group"), 404, None),
        (("GET", "/Nope"), 404, None),
        (("POST", "/ServiceProviderConfig", {}), 405, None),
        (("DELETE", "/Schemas"), 405, None),
        (("DELETE", "/Users"), 405, None),
    ]
    for request, status, scim_type in cases:
        answered, error = scim(*request)
        assert answered == status, (request, error)
        assert error["schemas"] == [ERROR_SCHEMA] and error["status"] == str(status), (request, error)
        if scim_type:
            assert error["scimType"] == scim_type, (request, error)
        assert "Traceback" not in json.dumps(error)
    settings.SCIM_MAX_BODY_BYTES = 100
    answered, error = scim("POST", "/Users", entra_user("big"))
    assert answered == 413 and error["status"] == "413"
    assert AuditEvent.objects.count() == before and User.objects.count() == 1


def test_scim_needs_no_csrf_token_but_the_rest_of_the_site_does(scim_client):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    response = strict.post(
        "/scim/v2/Users",
        data=json.dumps(entra_user()),
        content_type="application/scim+json",
        HTTP_AUTHORIZATION=f"Bearer {scim_client.token}",
    )
    assert response.status_code == 201
    assert strict.post("/account/sign-in/", {"username": "x", "password": "y"}).status_code == 403


# --- DIR-05: per-client bearer tokens -------------------------------------------------------------------------


def test_dir_05_tokens_are_random_hashed_at_rest_rotatable_and_disabled(scim, scim_client):
    token = scim_client.token
    assert token.startswith("scim_") and len(token) - len("scim_") >= 43  # 32 random bytes: 256 bits
    row = ScimClient.objects.get(pk=scim_client.pk)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM directory_scimclient")
        assert token not in repr(cursor.fetchall())
    assert AuditEvent.objects.filter(action="directory.scim_client_created", details__scim_client=row.pk).exists()

    status, error = scim("GET", "/Users", token="scim_wrong")
    assert status == 401 and error["status"] == "401"
    from django.test import Client

    anonymous = Client().get("/scim/v2/Users")
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"].startswith("Bearer")
    status, _ = scim("GET", "/Users", token=" ")
    assert status == 401

    assert scim("GET", "/Users")[0] == 200
    row.refresh_from_db()
    assert row.last_used_at is not None

    rotated = scim_clients.rotate_scim_token(row, actor=None)
    assert rotated != token and scim("GET", "/Users")[0] == 401 and scim("GET", "/Users", token=rotated)[0] == 200
    assert AuditEvent.objects.filter(action="directory.scim_token_rotated", details__scim_client=row.pk).exists()
    for event in AuditEvent.objects.all():
        assert token not in json.dumps(event.details) and rotated not in json.dumps(event.details)

    scim_clients.disable_scim_client(row, actor=None)
    status, error = scim("GET", "/Users", token=rotated)
    assert status == 403 and "disabled" in error["detail"]
    assert AuditEvent.objects.filter(action="directory.scim_client_disabled", details__scim_client=row.pk).exists()
    assert AuditEvent.objects.filter(action="directory.scim_refused", details__reason="disabled").exists()


def test_dir_05_a_client_limited_to_networks_is_refused_elsewhere(scim, scim_client, settings):
    scim_clients.update_scim_client(
        scim_client, name=scim_client.name, allowed_networks="10.9.0.0/16", enabled=True, actor=None
    )
    status, error = scim("GET", "/Users")  # the test client comes from 127.0.0.1
    assert status == 403 and error["status"] == "403"
    assert AuditEvent.objects.filter(action="directory.scim_refused", details__reason="network").exists()
    # Behind one proxy the client's address is the one the proxy saw (TRUSTED_PROXY_COUNT), not one it was told.
    settings.TRUSTED_PROXY_COUNT = 1
    assert scim("GET", "/Users", HTTP_X_FORWARDED_FOR="10.9.1.1")[0] == 200
    assert scim("GET", "/Users", HTTP_X_FORWARDED_FOR="10.9.1.1, 192.0.2.1")[0] == 403


def test_dir_05_every_change_a_client_makes_is_attributed_to_it(scim, scim_client):
    scim_id = created(scim)["id"]
    scim("PATCH", f"/Users/{scim_id}", patch({"op": "replace", "path": "name.familyName", "value": "Smyth"}))
    scim("PATCH", "/Groups/auditor", patch({"op": "add", "path": "members", "value": [{"value": scim_id}]}))
    scim("DELETE", f"/Users/{scim_id}")
    person = User.objects.get(directory_id=scim_id)
    events = AuditEvent.objects.filter(subject=person, action__startswith="directory.")
    assert {event.action for event in events} >= {
        "directory.person_created",
        "directory.person_updated",
        "directory.role_granted",
        "directory.person_deactivated",
    }
    assert all(event.details.get("scim_client") == scim_client.pk for event in events)
    assert all(event.ip == "127.0.0.1" and event.actor is None for event in events)


@pytest.fixture
def admin_client(client, superuser, sign_in):  # noqa: F811
    sign_in(client, superuser)
    return client


def test_dir_05_superusers_create_rotate_and_disable_clients_in_the_admin_the_token_shown_once(admin_client):
    from django.urls import reverse

    response = admin_client.post(
        reverse("admin:directory_scimclient_add"), {"name": "Entra ID", "allowed_networks": ""}
    )
    page = response.content.decode()
    token = re.search(r"<code>(scim_[A-Za-z0-9_-]{43})</code>", page).group(1)
    assert "no-store" in response["Cache-Control"] and "/scim/v2</code>" in page  # the tenant URL to paste
    row = ScimClient.objects.get(name="Entra ID")
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in admin_client.get(reverse("admin:directory_scimclient_change", args=[row.pk])).content.decode()
    assert token not in admin_client.get(reverse("admin:directory_scimclient_changelist")).content.decode()

    # The action asks first, on a page naming the token it replaces; the answer shows the new one.
    response = admin_client.post(
        reverse("admin:directory_scimclient_changelist"), {"action": "rotate_token", "_selected_action": [row.pk]}
    )
    rotate = reverse("admin:directory_scimclient_rotate", args=[row.pk])
    assert response.status_code == 302 and response["Location"] == rotate
    assert "scim_" not in admin_client.get(rotate).content.decode()
    replacing = row.token_issued_at.isoformat()
    response = admin_client.post(rotate, {"replacing": replacing})
    rotated = re.search(r"<code>(scim_[A-Za-z0-9_-]{43})</code>", response.content.decode()).group(1)
    assert "no-store" in response["Cache-Control"]
    row.refresh_from_db()
    assert rotated != token and row.token_hash == hashlib.sha256(rotated.encode()).hexdigest()
    # The same answer posted again (a reload) replaces nothing: the token just shown keeps working.
    page = admin_client.post(rotate, {"replacing": replacing}).content.decode()
    assert scim_clients.ROTATED_SINCE in page and "<code>scim_" not in page
    row.refresh_from_db()
    assert row.token_hash == hashlib.sha256(rotated.encode()).hexdigest()

    admin_client.post(
        reverse("admin:directory_scimclient_changelist"), {"action": "disable", "_selected_action": [row.pk]}
    )
    row.refresh_from_db()
    assert not row.enabled
    events = AuditEvent.objects.filter(details__scim_client=row.pk)
    assert {event.action for event in events} == {
        "directory.scim_client_created",
        "directory.scim_token_rotated",
        "directory.scim_client_disabled",
    }
    assert all(event.actor.is_superuser for event in events)


def test_dir_05_help_desk_and_auditors_cannot_see_scim_clients(staff_member, auditor, sign_in, scim_client):  # noqa: F811
    from django.test import Client
    from django.urls import reverse

    for person in (staff_member, auditor):
        browser = Client()
        sign_in(browser, person)
        assert browser.get(reverse("admin:directory_scimclient_changelist")).status_code == 403
        assert browser.get(reverse("admin:directory_scimclient_add")).status_code == 403
        rotate = reverse("admin:directory_scimclient_rotate", args=[scim_client.pk])
        assert browser.get(rotate).status_code == 403
        assert browser.post(rotate, {"replacing": scim_client.token_issued_at.isoformat()}).status_code == 403
    assert scim_client.token_hash == ScimClient.objects.get(pk=scim_client.pk).token_hash


def test_anything_unexpected_is_a_500_in_scims_shape_with_no_traceback(scim, monkeypatch):
    from identity.directory.scim import provisioning

    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(provisioning, "create_user", broken)
    status, error = scim("POST", "/Users", entra_user())
    assert status == 500 and error["status"] == "500" and error["schemas"] == [ERROR_SCHEMA]
    assert "secret internals" not in json.dumps(error) and "Traceback" not in json.dumps(error)


def test_dir_05_a_clients_networks_read_an_ipv4_mapped_address(scim, scim_client):
    # An IPv4 client of a server listening on "::" arrives as ::ffff:a.b.c.d: it is that IPv4 address.
    scim_clients.update_scim_client(
        scim_client, name=scim_client.name, allowed_networks="10.9.0.0/16", enabled=True, actor=None
    )
    assert scim("GET", "/Users", REMOTE_ADDR="::ffff:10.9.1.1")[0] == 200
    assert scim("GET", "/Users", REMOTE_ADDR="::ffff:192.0.2.1")[0] == 403
