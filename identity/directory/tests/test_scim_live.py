"""An unmodified SCIM client (scim2-client, over HTTP with httpx2) against the live server: it discovers the
service, creates a person, finds them by filter and deactivates them with ``active: false``; the person is then
refused at sign-in."""

import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import NotFoundException, PatchOp, PatchOperation, SearchRequest

from identity import errors
from identity.directory import scim_clients
from identity.models import AuditEvent
from identity.models import User as Person

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def client_for(live_server):
    _, token = scim_clients.create_scim_client(name="Okta", actor=None)
    http = httpx2.Client(base_url=f"{live_server.url}/scim/v2", headers={"Authorization": f"Bearer {token}"})
    scim = SyncSCIMClient(http)
    scim.discover()
    yield scim
    http.close()


def test_an_unmodified_scim_client_creates_finds_and_deactivates_a_person(client_for, client, settings):
    scim = client_for
    # The models the client built from the schemas and resource types we publish (RFC 7643 §6, §7).
    UserResource = scim.get_resource_model("User")
    assert {"userName", "active"} <= set(UserResource.model_json_schema(by_alias=True)["properties"])
    made = scim.create(
        UserResource.model_validate(
            {
                "userName": "dlee",
                "name": {"givenName": "Dana", "familyName": "Lee"},
                "emails": [{"value": "dlee@example.edu", "type": "work", "primary": True}],
                "active": True,
                ENTERPRISE: {"department": "Pediatrics"},
            }
        )
    )
    assert made.id and made.user_name == "dlee"
    assert made.model_dump()[ENTERPRISE]["department"] == "Pediatrics"

    found = scim.query(UserResource, query_parameters=SearchRequest(filter='userName eq "dlee"'))
    assert found.total_results == 1 and found.resources[0].id == made.id

    scim.modify(
        UserResource,
        made.id,
        PatchOp[UserResource](
            operations=[PatchOperation[UserResource](op=PatchOperation.Op.replace_, path="active", value=False)]
        ),
    )
    assert scim.query(UserResource, made.id).active is False

    stored = Person.objects.get(directory_id=made.id)
    assert not stored.is_active and stored.source == Person.Source.SCIM
    assert AuditEvent.objects.filter(subject=stored, action="directory.person_deactivated").exists()
    # Refused at sign-in with the words every deactivated person gets (no password could let them in).
    response = client.post("/account/sign-in/", {"username": "dlee", "password": "anything"})
    assert errors.ACCOUNT_INACTIVE.format(help_desk=settings.HELP_DESK_CONTACT) in response.content.decode()


def test_an_unmodified_scim_client_matches_by_external_id_searches_and_deletes(client_for):
    scim = client_for
    UserResource = scim.get_resource_model("User")
    made = scim.create(
        UserResource.model_validate(
            {
                "userName": "ekim",
                "externalId": "ekim-0001",
                "active": True,
                "name": {"givenName": "Eun", "familyName": "Kim"},
                "phoneNumbers": [{"type": "mobile", "value": "+1 617 555 0142"}],
            }
        )
    )
    assert made.external_id == "ekim-0001" and made.phone_numbers[0].value == "+16175550142"
    # Entra ID's question: is this externalId here?
    found = scim.query(UserResource, query_parameters=SearchRequest(filter='externalId eq "ekim-0001"'))
    assert found.total_results == 1 and found.resources[0].id == made.id
    # The same through POST /Users/.search.
    found = scim.search(UserResource, SearchRequest(filter='userName eq "ekim"'))
    assert found.total_results == 1 and found.resources[0].external_id == "ekim-0001"

    scim.delete(UserResource, made.id)
    with pytest.raises(NotFoundException):
        scim.query(UserResource, made.id)
    assert scim.query(UserResource, query_parameters=SearchRequest(filter='userName eq "ekim"')).total_results == 0
    assert not Person.objects.get(directory_id=made.id).is_active  # the row stays (DIR-02)
