"""SCIM clients and their bearer tokens (DIR-05): created, rotated, changed and disabled by superusers, every change
audited; and the client a request's token names, refused when disabled or outside its networks."""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from identity import audit
from identity.networks import address_allowed, clean_networks
from identity.secret_rows import create_with_secret, replace_secret, required_name

from .models import ScimClient

# 32 random bytes (256 bits, DIR-05's >= 160); the prefix lets a secret scanner recognise a leaked token.
TOKEN_PREFIX = "scim_"
# A client's last use is written at most this often: Entra ID sends a request per person on a first sync.
LAST_USED_RESOLUTION_SECONDS = 60


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_scim_client(*, name: str, allowed_networks: str = "", actor, ip: str | None = None):
    """Create an enabled SCIM client; return ``(client, token)``. The token is never readable again.

    Audits ``directory.scim_client_created``. Raises ``ValidationError`` for an empty or taken name or a bad
    network. The caller must have checked that ``actor`` may (a superuser).
    """
    name = required_name(name, what="SCIM client")
    if ScimClient.objects.filter(name=name).exists():
        raise ValidationError("A SCIM client with this name exists.")
    networks = clean_networks(allowed_networks)
    token = new_token()
    client = create_with_secret(
        ScimClient,
        action="directory.scim_client_created",
        details=lambda row: {"scim_client": row.pk, "name": name, "networks": networks},
        actor=actor,
        ip=ip,
        name=name,
        token_hash=hash_token(token),
        allowed_networks=networks,
    )
    return client, token


# Words for a rotation asked for from a page opened before the token it would replace was issued.
ROTATED_SINCE = (
    "The token of this client was already replaced after that page was opened, and the new one was shown once. "
    "Nothing changed now. If the new token was lost, rotate it again."
)


def rotate_scim_token(client: ScimClient, *, actor, ip: str | None = None, replacing: datetime | None = None) -> str:
    """Give the client a new token at once (the old one stops working); return it, to be shown once.

    ``replacing``: when the token to replace was issued (``ScimClient.token_issued_at``, as the page asking showed
    it); if another has been issued since (a form posted twice, by a reload, or two people at once) nothing changes
    and ``ValidationError`` is raised, so the token just shown and pasted into the directory keeps working.
    Audits ``directory.scim_token_rotated``. The caller must have checked that ``actor`` may.
    """
    token = new_token()

    def rotated_since(row: ScimClient) -> None:
        if replacing is not None and row.token_issued_at != replacing:
            raise ValidationError(ROTATED_SINCE, code="rotated_since")

    replace_secret(
        client,
        stored={"token_hash": hash_token(token), "token_rotated_at": timezone.now()},
        action="directory.scim_token_rotated",
        details=lambda row: {"scim_client": row.pk},
        actor=actor,
        ip=ip,
        unless=rotated_since,
    )
    return token


def update_scim_client(client: ScimClient, *, name: str, allowed_networks: str, enabled: bool, actor, ip=None):
    """Change a client's name, networks or enabled flag. Audits ``directory.scim_client_disabled`` when it is
    disabled, else ``directory.scim_client_changed``, with what changed. Raises ``ValidationError`` for a bad
    network. The caller must have checked that ``actor`` may."""
    networks = clean_networks(allowed_networks)
    with transaction.atomic():
        row = ScimClient.objects.select_for_update().get(pk=client.pk)
        new = {"name": name.strip(), "allowed_networks": networks, "enabled": enabled}
        changed = {field: value for field, value in new.items() if getattr(row, field) != value}
        if not changed:
            return row
        for field, value in new.items():
            setattr(row, field, value)
        row.save(update_fields=list(new))
        action = (
            "directory.scim_client_disabled" if changed.get("enabled") is False else "directory.scim_client_changed"
        )
        audit.record(action, actor=actor, ip=ip, details={"scim_client": row.pk, **changed})
    return row


def disable_scim_client(client: ScimClient, *, actor, ip: str | None = None) -> ScimClient:
    """Stop the client at once (its token is refused from the next request); audited as in ``update_scim_client``."""
    return update_scim_client(
        client, name=client.name, allowed_networks=client.allowed_networks, enabled=False, actor=actor, ip=ip
    )


def lift_deactivation_limit(client: ScimClient, *, actor, ip: str | None = None) -> None:
    """Let the client deactivate people again at once: its deactivations count toward
    SCIM_MAX_DEACTIVATIONS_PER_HOUR from now on (``identity.directory.scim.provisioning``). Audits
    ``directory.scim_deactivation_limit_lifted``. The caller must have checked that ``actor`` may (a superuser)
    and that the deactivations the client asks for are meant."""
    from .scim.provisioning import LIMIT_LIFTED_EVENT, recent_deactivations

    with transaction.atomic():
        row = ScimClient.objects.select_for_update().get(pk=client.pk)
        details = {"scim_client": row.pk, "deactivated": recent_deactivations(row)}
        audit.record(LIMIT_LIFTED_EVENT, actor=actor, ip=ip, details=details)


@dataclass(frozen=True)
class Refusal:
    """Why a request's token was refused: ``status`` 401 (no or unknown token) or 403 (disabled, wrong network)."""

    status: int
    detail: str


def client_for_token(token: str, *, ip: str | None) -> ScimClient | Refusal:
    """The enabled client ``token`` belongs to, when ``ip`` is in its networks; else a ``Refusal``.

    A known client refused (disabled, outside its networks) is audited as ``directory.scim_refused``; an unknown
    token is not (anyone can send one, and the audit log is not a place to fill). The client's ``last_used_at`` is
    brought up to date at most once a minute.
    """
    if not token:
        return Refusal(401, "A bearer token is required.")
    client = ScimClient.objects.filter(token_hash=hash_token(token)).first()
    if client is None:
        return Refusal(401, "The bearer token is not valid.")
    reason = None
    if not client.enabled:
        reason = "disabled"
    elif not address_allowed(client.allowed_networks, ip):
        reason = "network"
    if reason:
        audit.record("directory.scim_refused", actor=None, ip=ip, details={"scim_client": client.pk, "reason": reason})
        return Refusal(
            403, "This SCIM client is disabled." if reason == "disabled" else "Not allowed from this address."
        )
    now = timezone.now()
    if client.last_used_at is None or (now - client.last_used_at).total_seconds() >= LAST_USED_RESOLUTION_SECONDS:
        ScimClient.objects.filter(pk=client.pk).update(last_used_at=now)
        client.last_used_at = now
    return client
