"""What a person, a group and this service look like in SCIM (RFC 7643), on scim2-models' schema and filters.

A person is a SCIM User with the enterprise extension: ``userName`` is the institution ID, ``id`` our stable
``directory_id``, ``name.givenName``/``familyName``, the primary (work) email, ``department``, a mobile number and
``active``. The groups are fixed: the two staff roles and the VPN group; membership is a role, or VPN access while
the person is active.
"""

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, Q
from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Context,
    Email,
    EnterpriseUser,
    ETag,
    Filter,
    Group,
    GroupMember,
    InvalidFilterException,
    ListResponse,
    Meta,
    Name,
    Patch,
    PhoneNumber,
    ResourceType,
    ScimFilter,
    ServiceProviderConfig,
    Sort,
    User,
)
from scim2_models.path import CompareOperator, Comparison, FilterVisitor, LogicalExpr, LogicalOperator, Not, Present

from identity.models import AuditEvent
from identity.selectors import STAFF_GROUPS

from ..records import DirectoryRecord

UserResource = User[EnterpriseUser]
PREFIX = "/scim/v2"
# The most resources one page of a list answers (ServiceProviderConfig's filter.maxResults).
MAX_RESULTS = 200


def base_url() -> str:
    # From SITE_URL, never the Host header: these addresses go into every resource's meta.location.
    return settings.SITE_URL + PREFIX


# --- People -------------------------------------------------------------------------------------------------------


def user_resource(user) -> UserResource:
    resource = UserResource(
        id=user.directory_id,
        external_id=user.directory_external_id or None,
        user_name=user.username,
        name=Name(given_name=user.first_name or None, family_name=user.last_name or None),
        display_name=user.get_full_name() or None,
        emails=[Email(value=user.email, type=Email.Type.work, primary=True)] if user.email else None,
        phone_numbers=(
            [PhoneNumber(value=user.directory_mobile, type=PhoneNumber.Type.mobile)] if user.directory_mobile else None
        ),
        active=user.is_active,
        meta=Meta(
            resource_type="User",
            created=user.date_joined,
            last_modified=user.deactivated_at or user.date_joined,
            location=f"{base_url()}/Users/{user.directory_id}",
        ),
    )
    resource[EnterpriseUser] = EnterpriseUser(department=user.department or None)
    return resource


def _primary_email(resource: UserResource) -> str:
    emails = [email for email in resource.emails or [] if email.value]
    chosen = next((email for email in emails if email.primary), None) or next(
        (email for email in emails if email.type == Email.Type.work), None
    )
    chosen = chosen or (emails[0] if emails else None)
    return str(chosen.value) if chosen else ""


def _mobile(resource: UserResource) -> str:
    return next(
        (
            str(phone.value)
            for phone in resource.phone_numbers or []
            if phone.type == PhoneNumber.Type.mobile and phone.value
        ),
        "",
    )


def record_from_resource(
    resource: UserResource, *, directory_id: str, active_if_unsaid: bool = True
) -> DirectoryRecord:
    """The person a SCIM User describes. Roles and VPN access are left alone (groups carry them). A User that says
    nothing of ``active`` is taken as ``active_if_unsaid``: a new person is active, a replaced one stays as they
    are (a client's full replace that leaves ``active`` out must not bring a leaver back, DIR-02)."""
    name = resource.name or Name()
    extension = resource[EnterpriseUser]
    return DirectoryRecord(
        source=get_user_model().Source.SCIM,
        directory_id=directory_id,
        institution_id=(resource.user_name or "").strip(),
        external_id=(resource.external_id or "").strip(),
        first_name=(name.given_name or "").strip(),
        last_name=(name.family_name or "").strip(),
        email=_primary_email(resource).strip(),
        department=((extension.department if extension else None) or "").strip(),
        mobile=_mobile(resource).strip(),
        active=active_if_unsaid if resource.active is None else bool(resource.active),
    )


# A DELETE /Users/{id}: the deactivation's reason, and the event that says the client deleted the person.
DELETED = "scim_delete"
DELETED_EVENT = "directory.scim_person_deleted"


def _deleted_by_a_client():
    """Whether a client deleted the person since their current deactivation began. Told by the audit event the
    DELETE wrote, so the audit log is the one record of it."""
    return Exists(
        AuditEvent.objects.filter(
            subject=OuterRef("pk"), action=DELETED_EVENT, created_at__gte=OuterRef("deactivated_at")
        )
    )


def deleted_by_a_client(user) -> bool:
    return (
        user.source == get_user_model().Source.SCIM
        and not user.is_active
        and get_user_model().objects.filter(pk=user.pk).filter(_deleted_by_a_client()).exists()
    )


def scim_people():
    """The people SCIM clients see and change: those that came from SCIM (never a local or LDAP account), but for
    those a client deleted: gone for every client from then on (RFC 7644 §3.6: 404), while their row and their
    audit trail stay here (DIR-02). Reactivated some other way, they are back."""
    people = get_user_model().objects.filter(source=get_user_model().Source.SCIM)
    return people.filter(Q(is_active=True) | ~_deleted_by_a_client()).order_by("pk")


# What a filter may name, lower-cased, and the column it reads. The strings are caseExact=false (RFC 7643 §4.1.1)
# but for the two identifiers, id and externalId, which are caseExact.
_COLUMNS = {
    "username": "username",
    "id": "directory_id",
    "externalid": "directory_external_id",
    "name.givenname": "first_name",
    "name.familyname": "last_name",
    "emails": "email",
    "emails.value": "email",
    "active": "is_active",
    f"{EnterpriseUser.__schema__}:department".lower(): "department",
}
_CASE_EXACT = {"directory_id", "directory_external_id"}
_LOOKUPS = {
    CompareOperator.eq: "iexact",
    CompareOperator.co: "icontains",
    CompareOperator.sw: "istartswith",
    CompareOperator.ew: "iendswith",
    CompareOperator.gt: "gt",
    CompareOperator.ge: "gte",
    CompareOperator.lt: "lt",
    CompareOperator.le: "lte",
}


class _PeopleQuery(FilterVisitor[Q]):
    """A parsed filter as a query on people (so a filter over 30,000 people is one indexed SQL query)."""

    @staticmethod
    def _column(attr_path) -> str:
        name = attr_path.attr + (f".{attr_path.sub_attr}" if attr_path.sub_attr else "")
        key = (f"{attr_path.uri}:{name}" if attr_path.uri else name).lower()
        if key.startswith(str(User.__schema__).lower() + ":"):
            key = key[len(str(User.__schema__)) + 1 :]
        if key not in _COLUMNS:
            raise InvalidFilterException(detail=f"Filtering on {name} is not supported here.")
        return _COLUMNS[key]

    def visit_comparison(self, node: Comparison) -> Q:
        column = self._column(node.attr_path)
        if column == "is_active":
            if node.op not in (CompareOperator.eq, CompareOperator.ne) or not isinstance(node.value, bool):
                raise InvalidFilterException(detail="active compares with eq or ne, true or false.")
            return Q(is_active=node.value) if node.op == CompareOperator.eq else ~Q(is_active=node.value)
        if node.value is None or isinstance(node.value, bool):
            raise InvalidFilterException(detail=f"{node.attr_path.attr} compares with a string.")
        negated = node.op == CompareOperator.ne
        lookup = _LOOKUPS[CompareOperator.eq if negated else node.op]
        if column in _CASE_EXACT and lookup.startswith("i"):
            lookup = lookup[1:]
        query = Q(**{f"{column}__{lookup}": node.value})
        return ~query if negated else query

    def visit_present(self, node: Present) -> Q:
        column = self._column(node.attr_path)
        return Q() if column == "is_active" else ~Q(**{column: ""})

    def visit_not(self, node: Not) -> Q:
        return ~self.visit(node.expr)

    def visit_logical_expr(self, node: LogicalExpr) -> Q:
        queries = [self.visit(term) for term in node.terms]
        combined = queries[0]
        for query in queries[1:]:
            combined = (combined & query) if node.op == LogicalOperator.and_ else (combined | query)
        return combined

    def visit_value_path(self, node) -> Q:
        raise InvalidFilterException(detail="Value filters (attribute[...]) are not supported here.")


def people_matching(text: str | None):
    """The SCIM people a filter selects (all of them without one). Raises ``InvalidFilterException``."""
    people = scim_people()
    if not text:
        return people
    return people.filter(_PeopleQuery().visit(ScimFilter[UserResource](text).ast))


# --- Groups -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScimGroup:
    """One of the groups a cloud directory can fill: a staff role (``role``) or, with ``role`` None, VPN access.

    Its members are the people the clients put in it, deactivated ones too (their roles kept, their VPN group
    membership kept in ``scim_vpn_member``): a client's membership is not undone by a deactivation."""

    id: str
    display_name: str
    role: str | None

    def members(self):
        people = scim_people()
        if self.role:
            return people.filter(groups__name=self.role)
        return people.filter(scim_vpn_member=True)


HELP_DESK, AUDITOR = STAFF_GROUPS
GROUPS = (
    ScimGroup("help-desk", HELP_DESK, HELP_DESK),
    ScimGroup("auditor", AUDITOR, AUDITOR),
    ScimGroup("vpn", "VPN", None),
)


GROUPS_BY_ID = {group.id: group for group in GROUPS}
ROLE_NAMES = frozenset(group.role for group in GROUPS if group.role)


def group_by_name(display_name: str) -> ScimGroup | None:
    return next((group for group in GROUPS if group.display_name.lower() == display_name.strip().lower()), None)


def group_resource(group: ScimGroup, *, with_members: bool = True) -> Group:
    members = None
    if with_members:
        members = [
            GroupMember(
                value=person.directory_id, display=person.username, ref=f"{base_url()}/Users/{person.directory_id}"
            )
            for person in group.members().only("directory_id", "username")
        ]
    return Group(
        id=group.id,
        display_name=group.display_name,
        members=members,
        meta=Meta(resource_type="Group", location=f"{base_url()}/Groups/{group.id}"),
    )


def groups_matching(text: str | None) -> list[Group]:
    resources = [group_resource(group, with_members=False) for group in GROUPS]
    if not text:
        return resources
    scim_filter = ScimFilter[Group](text)
    return [resource for resource in resources if scim_filter.match(resource)]


# --- This service -------------------------------------------------------------------------------------------------


def service_provider_config() -> ServiceProviderConfig:
    return ServiceProviderConfig(
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=False),
        authentication_schemes=[
            AuthenticationScheme(
                type="oauthbearertoken",
                name="Bearer token",
                description="A per-client token made by a superuser in the admin (SCIM clients), shown once.",
                primary=True,
            )
        ],
        meta=Meta(resource_type="ServiceProviderConfig", location=f"{base_url()}/ServiceProviderConfig"),
    )


def resource_types() -> list[ResourceType]:
    types = [ResourceType.from_resource(UserResource), ResourceType.from_resource(Group)]
    for resource_type in types:
        resource_type.meta = Meta(
            resource_type="ResourceType", location=f"{base_url()}/ResourceTypes/{resource_type.id}"
        )
    return types


# What we keep of each schema (RFC 7643 §7: a service publishes the attributes it supports). The rest of a resource
# a client sends is accepted and not kept.
_KEPT_ATTRIBUTES = {
    User: {"userName", "name", "displayName", "active", "emails", "phoneNumbers"},
    EnterpriseUser: {"department"},
    Group: {"displayName", "members"},
}
_KEPT_NAME_PARTS = {"givenName", "familyName"}


def schemas():
    found = []
    for model, kept in _KEPT_ATTRIBUTES.items():
        schema = model.to_schema()
        schema.attributes = [attribute for attribute in schema.attributes if attribute.name in kept]
        for attribute in schema.attributes:
            if attribute.name == "name":
                attribute.sub_attributes = [part for part in attribute.sub_attributes if part.name in _KEPT_NAME_PARTS]
        schema.meta = Meta(resource_type="Schema", location=f"{base_url()}/Schemas/{schema.id}")
        found.append(schema)
    return found


def list_response(resources, *, total: int, start_index: int, parameters=None) -> dict:
    # The resources' type is known only here, at run time (users, groups, schemas or resource types).
    return ListResponse[type(resources[0]) if resources else UserResource](  # type: ignore[misc, operator]
        total_results=total, start_index=start_index, items_per_page=len(resources), resources=resources or None
    ).model_dump(scim_ctx=Context.SEARCH_RESPONSE, response_parameters=parameters)
