"""What a SCIM client asks for, handed to the people service (``identity.directory.people``), the one door the LDAP
sync goes through too: the same joiner, mover and leaver rules, the same audit, attributed to the client with
``origin={"scim_client": id}``. Nothing here writes a person itself."""

import uuid
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from scim2_models import (
    ConflictException,
    Context,
    Email,
    Group,
    InvalidValueException,
    MutabilityException,
    NotFoundException,
    PatchOp,
    PhoneNumber,
    SCIMException,
    UniquenessException,
)

from ... import audit
from ...models import AuditEvent
from .. import people
from ..models import ScimClient
from ..records import DirectoryRecord
from . import resources
from .resources import ScimGroup, UserResource

# Entra ID sets a typed value that the person may not have yet (``emails[type eq "work"].value``), which RFC 7644
# answers with noTarget; like every provider Entra talks to, we add the typed entry first.
_TYPED_VALUE_ATTRIBUTES = {"emails": ("emails", Email), "phonenumbers": ("phone_numbers", PhoneNumber)}


def _origin(client: ScimClient) -> dict:
    return {"scim_client": client.pk}


def _locked(user):
    """``user`` read again under a row lock: a change built from it cannot undo a concurrent one."""
    return get_user_model().objects.select_for_update().get(pk=user.pk)


# --- The guard against mass deactivation (DIR-03, as it applies to SCIM) -----------------------------------------

DEACTIVATION_WINDOW = timedelta(hours=1)
LIMIT_REFUSED_EVENT = "directory.scim_deactivation_refused"
LIMIT_LIFTED_EVENT = "directory.scim_deactivation_limit_lifted"


class DeactivationsPaused(SCIMException):
    """429: the client has deactivated SCIM_MAX_DEACTIVATIONS_PER_HOUR people within the hour."""

    status = 429


def deactivations_counted_since(client: ScimClient):
    """Since when the client's deactivations count toward its limit: the last hour, or since a superuser last
    lifted the limit, whichever is later."""
    since = timezone.now() - DEACTIVATION_WINDOW
    lifted = (
        AuditEvent.objects.filter(action=LIMIT_LIFTED_EVENT, details__scim_client=client.pk, created_at__gte=since)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    return lifted or since


def recent_deactivations(client: ScimClient) -> int:
    """How many people ``client`` deactivated (``active: false`` or DELETE) in the window its limit counts."""
    return AuditEvent.objects.filter(
        action="directory.person_deactivated",
        details__scim_client=client.pk,
        created_at__gte=deactivations_counted_since(client),
    ).count()


def _deactivation_refusal(client: ScimClient, *, subject, ip: str | None) -> str:
    """Why deactivating ``subject`` now is refused (audited ``directory.scim_deactivation_refused``), or "".

    Runs in the caller's transaction, which holds ``subject``'s row lock; the client's row is locked too, so
    concurrent deactivations by one client are counted one after another."""
    limit = settings.SCIM_MAX_DEACTIVATIONS_PER_HOUR
    if not limit:
        return ""
    ScimClient.objects.select_for_update().get(pk=client.pk)
    done = recent_deactivations(client)
    if done < limit:
        return ""
    audit.record(
        LIMIT_REFUSED_EVENT, subject=subject, ip=ip, details={**_origin(client), "deactivated": done, "limit": limit}
    )
    return (
        f"This client has deactivated {done} people within the hour; more than {limit} "
        "(SCIM_MAX_DEACTIVATIONS_PER_HOUR) is refused so that a directory's mistake cannot deactivate everyone. "
        "Nothing was changed. Deactivations from this client resume when the hour has passed, or when a superuser "
        "lifts the limit in the admin."
    )


def person(scim_id: str):
    found = resources.scim_people().filter(directory_id=scim_id).first()
    if found is None:
        raise NotFoundException(detail=f"No user {scim_id}.")
    return found


def _apply(record, *, client: ScimClient, ip: str | None, taken: str = ""):
    """Hand ``record`` to the people service; its ``DirectoryConflict`` answers 409 (uniqueness), in the words of
    ``taken`` when given."""
    if not record.institution_id:
        raise InvalidValueException(detail="userName (the institution ID) is required.")
    if record.mobile and not people.mobile_of(record):
        # The LDAP sync can only drop such a number; a SCIM client is told, and nothing changes.
        raise InvalidValueException(
            detail='phoneNumbers[type eq "mobile"] is not a valid phone number: give it with its country code, '
            "e.g. +44 20 7946 0958."
        )
    try:
        people.apply_record(record, origin=_origin(client), ip=ip)
    except people.DirectoryConflict as error:
        raise UniquenessException(detail=taken or str(error)) from error
    return person(record.directory_id)


def create_user(resource: UserResource, *, client: ScimClient, ip: str | None):
    """A joiner. Answers 409 (uniqueness) when the userName is taken, here or by a local or LDAP account, and 400
    for a disabled one. A person a client deleted is no conflict (RFC 7644 §3.6): they come back, with their row,
    devices still kept and audit trail, under their old id."""
    user_name = (resource.user_name or "").strip()
    holder = get_user_model().objects.filter(username__iexact=user_name).first() if user_name else None
    directory_id = str(uuid.uuid4())
    taken = f"userName {user_name} exists."
    if holder is not None:
        if not resources.deleted_by_a_client(holder):
            raise UniquenessException(detail=taken)
        directory_id = holder.directory_id
    record = resources.record_from_resource(resource, directory_id=directory_id)
    if not record.active:
        # The people service brings in no one the directory has disabled (there would be nothing to answer with).
        raise InvalidValueException(detail="A person is created active; send active: false once they leave.")
    # Created meanwhile in another case (the sync, another client: the unique index on UPPER(username) refuses the
    # second), it is answered as the check above answers it.
    return _apply(record, client=client, ip=ip, taken=taken)


def _change(user, build: Callable[..., DirectoryRecord], *, client: ScimClient, ip: str | None):
    """Apply the record ``build`` makes of ``user``, read under a row lock, in one transaction: a concurrent change
    to the same person waits and then builds on this one. A deactivation past the client's limit is refused
    (``DeactivationsPaused``, 429) and changes nothing."""
    refusal = ""
    with transaction.atomic():
        user = _locked(user)
        record = build(user)
        if not record.active and user.is_active:
            refusal = _deactivation_refusal(client, subject=user, ip=ip)
        if not refusal:
            return _apply(record, client=client, ip=ip)
    raise DeactivationsPaused(detail=refusal)


def replace_user(user, resource: UserResource, *, client: ScimClient, ip: str | None):
    """PUT: the person becomes what ``resource`` says (a mover, a leaver when ``active`` is false)."""

    def build(locked) -> DirectoryRecord:
        return resources.record_from_resource(
            resource, directory_id=locked.directory_id, active_if_unsaid=locked.is_active
        )

    return _change(user, build, client=client, ip=ip)


def _add_missing_typed_entries(current: UserResource, body: dict) -> None:
    for operation in body.get("Operations") or []:
        if not isinstance(operation, dict) or str(operation.get("op", "")).lower() not in ("add", "replace"):
            continue
        path = str(operation.get("path") or "")
        attribute, _, rest = path.partition("[")
        field, model = _TYPED_VALUE_ATTRIBUTES.get(attribute.lower(), (None, None))
        if not field or model is None or not rest.lower().startswith("type eq "):
            continue
        wanted = rest[len("type eq ") :].split("]")[0].strip().strip('"').lower()
        entries = list(getattr(current, field) or [])
        if not any(str(getattr(entry.type, "value", entry.type)).lower() == wanted for entry in entries):
            entries.append(model.model_validate({"type": wanted}))
            setattr(current, field, entries)


def patch_user(user, body: dict, *, client: ScimClient, ip: str | None):
    """PATCH as Entra ID and Okta send it (RFC 7644 §3.5.2, with Entra's capitalised ops, path-less value objects
    and "False" as a string, which scim2-models reads): applied to the person as SCIM sees them, read under a row
    lock (two PATCHes at once each keep the other's change), then handed on."""

    def build(locked) -> DirectoryRecord:
        current = resources.user_resource(locked)
        _add_missing_typed_entries(current, body)
        PatchOp[UserResource].model_validate(body, scim_ctx=Context.RESOURCE_PATCH_REQUEST).patch(current)
        current.id = locked.directory_id
        return resources.record_from_resource(current, directory_id=locked.directory_id)

    return _change(user, build, client=client, ip=ip)


def deactivate_user(user, *, client: ScimClient, ip: str | None) -> None:
    """DELETE: the person is deactivated (DIR-02), never deleted: the audit log keeps pointing at them. For SCIM
    clients they are gone (404 from then on, RFC 7644 §3.6), even one deactivated before by ``active: false``.
    Deactivating an active person past the client's limit is refused (``DeactivationsPaused``, 429)."""
    refusal = ""
    with transaction.atomic():
        user = _locked(user)
        if user.is_active:
            refusal = _deactivation_refusal(client, subject=user, ip=ip)
        if not refusal:
            people.deactivate_person(user, reason=resources.DELETED, origin=_origin(client), ip=ip)
            audit.record(resources.DELETED_EVENT, subject=user, ip=ip, details=_origin(client))
            return
    raise DeactivationsPaused(detail=refusal)


# --- Groups -------------------------------------------------------------------------------------------------------


def _members_named(ids: set[str]) -> dict:
    # Read after the lock set_group_members takes: whom to change is decided from rows no one else is changing.
    found = {user.directory_id: user for user in resources.scim_people().filter(directory_id__in=ids)}
    missing = sorted(ids - set(found))
    if missing:
        raise InvalidValueException(detail=f"No user {', '.join(missing)}: provision people before their groups.")
    return found


def _mass_removal(group: ScimGroup, current: dict, leaving: list, *, emptying: bool) -> str:
    """Why taking ``leaving`` out of ``group`` at once is refused (DIR-03's guard, as it applies to SCIM), or ""."""
    limit = settings.SCIM_MAX_GROUP_REMOVALS
    if len(leaving) > limit:
        return (
            f"This change would take {len(leaving)} people out of {group.display_name} at once; more than "
            f"{limit} (SCIM_MAX_GROUP_REMOVALS) is refused so that a directory's mistake cannot revoke a whole "
            "group. Nothing was changed: remove members in smaller batches."
        )
    if emptying and len(current) > 1:
        # As the LDAP sync never deactivates anyone on an empty result: an empty list is more often a fault.
        return (
            f"An empty member list does not empty {group.display_name} ({len(current)} members) here. Nothing was "
            'changed: remove the members by name (PATCH remove members[value eq "..."]).'
        )
    return ""


def set_group_members(
    group: ScimGroup, member_ids: set[str], *, client: ScimClient, ip: str | None, wholesale: bool = True
) -> None:
    """Make ``member_ids`` the group's members: each person who joins or leaves gets the role or VPN access, or
    loses it, through the people service (``apply_group_change``), a deactivated person's membership kept for when
    they are reactivated. All or nothing: an unknown member changes nobody.

    ``wholesale``: the client sent the whole membership (PUT, POST, a PATCH replacing or removing "members" as a
    whole) rather than naming whom to remove. A change removing more than SCIM_MAX_GROUP_REMOVALS people, or a
    wholesale empty list for a group of several, is refused (409, audited ``directory.scim_group_change_refused``)
    and changes nobody.
    """
    refusal = ""
    with transaction.atomic():
        # Everyone the change may touch, locked in one statement in a fixed order: two group changes (or a group
        # change and a PATCH of a member) wait for each other, and each decides from rows read after.
        touched = resources.scim_people().filter(directory_id__in=member_ids).values("pk")
        members = group.members().values("pk")
        locked = get_user_model().objects.select_for_update().filter(Q(pk__in=touched) | Q(pk__in=members))
        list(locked.order_by("pk").values_list("pk", flat=True))
        wanted = _members_named(member_ids)
        current = {user.directory_id: user for user in group.members().select_for_update(of=("self",))}
        changes = [(user, True) for scim_id, user in wanted.items() if scim_id not in current]
        leaving = [user for scim_id, user in current.items() if scim_id not in wanted]
        refusal = _mass_removal(group, current, leaving, emptying=wholesale and not wanted)
        if refusal:
            audit.record(
                "directory.scim_group_change_refused",
                subject=None,
                ip=ip,
                details={
                    **_origin(client),
                    "group": group.display_name,
                    "would_remove": len(leaving),
                    "members": len(current),
                    "limit": settings.SCIM_MAX_GROUP_REMOVALS,
                },
            )
            changes = []
        else:
            changes += [(user, False) for user in leaving]
        for user, joined in changes:
            if group.role:
                roles = set(user.groups.filter(name__in=resources.ROLE_NAMES).values_list("name", flat=True))
                (roles.add if joined else roles.discard)(group.role)
                people.apply_group_change(user, roles=frozenset(roles), origin=_origin(client), ip=ip)
            else:
                people.apply_group_change(user, vpn_member=joined, origin=_origin(client), ip=ip)
    if refusal:
        raise ConflictException(detail=refusal)


def member_ids(body: dict) -> set[str]:
    """The member ids a POSTed or PUT Group names."""
    members = body.get("members") or []
    if not isinstance(members, list) or not all(isinstance(member, dict) for member in members):
        raise InvalidValueException(detail='members is a list of {"value": id}.')
    return {str(member.get("value")) for member in members if member.get("value")}


def _entra_member_removals(body: dict) -> dict:
    """Entra ID removes members as ``{"op": "Remove", "path": "members", "value": [{"value": id}]}``, which RFC
    7644 writes ``members[value eq "id"]``; rewritten so, else it would read as "remove every member"."""
    operations = []
    for operation in body.get("Operations") or []:
        if (
            isinstance(operation, dict)
            and str(operation.get("op", "")).lower() == "remove"
            and str(operation.get("path", "")).lower() == "members"
            and isinstance(operation.get("value"), list)
        ):
            operations += [
                {"op": "remove", "path": f'members[value eq "{member.get("value")}"]'}
                for member in operation["value"]
                if isinstance(member, dict)
            ]
        else:
            operations.append(operation)
    return {**body, "Operations": operations}


def _wholesale(body: dict) -> bool:
    """Whether a PATCH (after Entra's removals are rewritten) replaces or removes "members" as a whole."""
    for operation in body.get("Operations") or []:
        if not isinstance(operation, dict):
            continue
        op, path = str(operation.get("op", "")).lower(), str(operation.get("path") or "").lower()
        value = operation.get("value")
        if op in ("remove", "replace") and path == "members":
            return True
        if op == "replace" and not path and isinstance(value, dict) and "members" in {k.lower() for k in value}:
            return True
    return False


def patch_group(group: ScimGroup, body: dict, *, client: ScimClient, ip: str | None) -> None:
    current = resources.group_resource(group)
    body = _entra_member_removals(body)
    PatchOp[Group].model_validate(body, scim_ctx=Context.RESOURCE_PATCH_REQUEST).patch(current)
    if current.display_name != group.display_name:
        raise MutabilityException(detail="The groups here keep their names.")
    members = {str(member.value) for member in current.members or []}
    set_group_members(group, members, client=client, ip=ip, wholesale=_wholesale(body))
