"""Integrations and RADIUS clients (API-03): who may ask the VPN gate, created, changed and rotated by superusers,
every change audited; and the integration a signed request names, read through a short per-process cache."""

import ipaddress
import secrets
import string
import time
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from devices import crypto
from identity import audit
from identity.models import User
from identity.networks import address_allowed, clean_networks  # noqa: F401 (address_allowed: vpn.services exports it)
from identity.secret_rows import create_with_secret, replace_secret, required_name

from ..models import Integration, RadiusClient, parse_networks

_KEY_ALPHABET = string.ascii_uppercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits


def new_integration_key() -> str:
    return "DI" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(18))


def new_secret() -> str:
    """40 characters of 62 (238 bits, OTP-07's >= 160)."""
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))


def create_integration(
    *, name: str, allowed_networks: str = "", actor: User | None, ip: str | None = None
) -> tuple[Integration, str]:
    """Create an enabled integration; return ``(integration, secret)``. The secret is never readable again.

    Audits ``vpn.integration_created``. Raises ``ValidationError`` for an empty name or a bad network. The caller
    must have checked that ``actor`` may (a superuser, or someone at the server's shell).
    """
    name = required_name(name, what="integration")
    networks = clean_networks(allowed_networks)
    secret = new_secret()
    integration = create_with_secret(
        Integration,
        action="vpn.integration_created",
        details=lambda row: {"integration": row.integration_key, "name": name, "networks": networks},
        actor=actor,
        ip=ip,
        name=name,
        integration_key=new_integration_key(),
        encrypted_secret=crypto.encrypt(secret.encode()),
        allowed_networks=networks,
    )
    return integration, secret


def update_integration(
    integration: Integration,
    *,
    name: str,
    allowed_networks: str,
    enabled: bool,
    actor: User | None,
    ip: str | None = None,
) -> Integration:
    """Change an integration's name, networks or enabled flag; audits ``vpn.integration_changed`` with what changed.

    Raises ``ValidationError`` for a bad network. The caller must have checked that ``actor`` may.
    """
    networks = clean_networks(allowed_networks)
    with transaction.atomic():
        row = Integration.objects.select_for_update().get(pk=integration.pk)
        changed = {
            field: value
            for field, value in (("name", name.strip()), ("networks", networks), ("enabled", enabled))
            if value != getattr(row, "allowed_networks" if field == "networks" else field)
        }
        if not changed:
            return row
        row.name, row.allowed_networks, row.enabled = name.strip(), networks, enabled
        row.save(update_fields=["name", "allowed_networks", "enabled"])
        forget_known_integrations()
        audit.record(
            "vpn.integration_changed",
            actor=actor,
            ip=ip,
            details={"integration": row.integration_key, **changed},
        )
    return row


# What a rotation audits, per kind of row: the action and how the row is named in the details.
_ROTATIONS = {
    Integration: ("vpn.integration_rotated", lambda row: {"integration": row.integration_key}),
    RadiusClient: ("vpn.radius_client_rotated", lambda row: {"radius_client": row.name}),
}


# Words for a rotation asked for from a page opened before the secret it would replace was issued.
ROTATED_SINCE = (
    "The secret of {row} was already replaced after that page was opened, and the new one was shown once. Nothing "
    "changed now. If the new secret was lost, rotate it again."
)


def _rotate(row: Integration | RadiusClient, *, actor: User | None, ip: str | None, replacing: datetime | None) -> str:
    action, details_of = _ROTATIONS[type(row)]
    secret = new_secret()

    def rotated_since(locked: Integration | RadiusClient) -> None:
        if replacing is not None and (locked.secret_rotated_at or locked.created_at) != replacing:
            raise ValidationError(ROTATED_SINCE.format(row=locked), code="rotated_since")

    replace_secret(
        row,
        stored={"encrypted_secret": crypto.encrypt(secret.encode()), "secret_rotated_at": timezone.now()},
        action=action,
        details=details_of,
        actor=actor,
        ip=ip,
        then=forget_known_integrations,
        unless=rotated_since,
    )
    return secret


def rotate_integration_secret(
    integration: Integration, *, actor: User | None, ip: str | None = None, replacing: datetime | None = None
) -> str:
    """Give the integration a new secret at once (the old one stops working); return it, to be shown once.

    ``replacing``: when the secret to replace was issued (its rotation, else the integration's creation), as the
    page asking showed it; if another has been issued since (a form posted twice), nothing changes and
    ``ValidationError`` is raised. Audits ``vpn.integration_rotated``. The caller must have checked that ``actor`` may.
    """
    return _rotate(integration, actor=actor, ip=ip, replacing=replacing)


def _one_network(network: str) -> str:
    networks = parse_networks(network)
    if len(networks) != 1:
        raise ValidationError("Give exactly one network, like 10.0.0.5/32.")
    return str(networks[0])


def _message_authenticator(choice: str) -> str:
    if choice not in RadiusClient.MessageAuthenticator.values:
        raise ValidationError(f"Message-Authenticator is {' or '.join(RadiusClient.MessageAuthenticator.values)}.")
    return choice


def check_radius_network(network: str, *, enabled: bool = True, client_id: int | None = None) -> str:
    """The network in its stored form, if an enabled client may have it; else ``ValidationError`` saying why.

    The most specific network holding a request's address answers it, so overlapping networks are fine (a /32
    inside a /24 takes its own address); the same network twice is refused: which secret would be tried is chance.
    """
    network = _one_network(network)
    # pk=None (a new client) excludes nothing, as meant.
    same = RadiusClient.objects.filter(enabled=True, network=network).exclude(pk=client_id).first()  # type: ignore[misc]
    if enabled and same is not None:
        raise ValidationError(
            f"The RADIUS client {same.name!r} already has the network {network}: requests from there can be checked "
            f"with one shared secret only. Disable {same.name!r} first, or give a narrower network (the most "
            "specific network holding a request's address answers it)."
        )
    return network


def radius_overlaps(client: RadiusClient) -> list[str]:
    """Sentences naming the other enabled clients whose networks overlap this one's, and which answers where."""
    mine = ipaddress.ip_network(client.network)
    sentences = []
    for other in RadiusClient.objects.filter(enabled=True).exclude(pk=client.pk).order_by("name"):
        theirs = ipaddress.ip_network(other.network)
        if mine.version != theirs.version or not mine.overlaps(theirs):
            continue
        narrow, wide = (client, other) if mine.prefixlen > theirs.prefixlen else (other, client)
        sentences.append(
            f"{other.name} ({other.network}) overlaps it: requests from {narrow.network} are checked with "
            f"{narrow.name}'s secret, the rest of {wide.network} with {wide.name}'s."
        )
    return sentences


def create_radius_client(
    *, name: str, network: str, message_authenticator: str = "require", actor: User | None, ip: str | None = None
) -> tuple[RadiusClient, str]:
    """Create a RADIUS client for ``network``; return ``(client, shared_secret)``, the secret shown once.

    Audits ``vpn.radius_client_created``. Raises ``ValidationError`` for an empty name, a bad network, a network
    another enabled client has (:func:`check_radius_network`) or an unknown Message-Authenticator choice.
    """
    name = required_name(name, what="RADIUS client")
    message_authenticator = _message_authenticator(message_authenticator)
    network = check_radius_network(network)
    secret = new_secret()
    client = create_with_secret(
        RadiusClient,
        action="vpn.radius_client_created",
        details=lambda row: {
            "radius_client": name,
            "network": row.network,
            "message_authenticator": message_authenticator,
        },
        actor=actor,
        ip=ip,
        name=name,
        network=network,
        message_authenticator=message_authenticator,
        encrypted_secret=crypto.encrypt(secret.encode()),
    )
    return client, secret


def update_radius_client(
    client: RadiusClient,
    *,
    name: str,
    network: str,
    enabled: bool,
    message_authenticator: str | None = None,
    actor: User | None,
    ip: str | None = None,
) -> RadiusClient:
    """Change a RADIUS client's name, network, enabled flag or Message-Authenticator choice (unchanged when None);
    audits ``vpn.radius_client_changed``. Raises ``ValidationError`` as :func:`create_radius_client` does."""
    with transaction.atomic():
        row = RadiusClient.objects.select_for_update().get(pk=client.pk)
        new = {
            "name": name.strip(),
            "network": check_radius_network(network, enabled=enabled, client_id=row.pk),
            "enabled": enabled,
            "message_authenticator": _message_authenticator(message_authenticator or row.message_authenticator),
        }
        changed = {field: value for field, value in new.items() if getattr(row, field) != value}
        if not changed:
            return row
        for field, value in new.items():
            setattr(row, field, value)
        row.save(update_fields=list(new))
        audit.record("vpn.radius_client_changed", actor=actor, ip=ip, details={"radius_client": row.name, **changed})
    return row


def rotate_radius_secret(
    client: RadiusClient, *, actor: User | None, ip: str | None = None, replacing: datetime | None = None
) -> str:
    """A new shared secret for the client, returned to be shown once (``replacing`` as for an integration's);
    audits ``vpn.radius_client_rotated``."""
    return _rotate(client, actor=actor, ip=ip, replacing=replacing)


# --- The integration a signed request names ------------------------------------------------------------------

# integration key -> (read at, the encryption keys it was decrypted with, the row, its secret or None)
_KNOWN: dict[str, tuple[float, tuple, Integration, str | None]] = {}


def forget_known_integrations() -> None:
    """Drop this process's cached integrations (after a change here; other processes wait out the cache time)."""
    _KNOWN.clear()


def integration_for_key(ikey: str) -> tuple[Integration, str | None] | None:
    """The integration with key ``ikey`` and its secret (None when no configured key decrypts it), or None.

    Read from the database at most every ``VPN_INTEGRATION_CACHE_SECONDS`` per process: every VPN check names
    its integration, which changes a few times a year. A change made in this process applies at once; in the
    others (gunicorn workers, the RADIUS server) a disabled integration or a rotated secret applies within that
    many seconds. 0 reads the row on every request.
    """
    keys = tuple(settings.FACTOR_ENCRYPTION_KEYS)
    now = time.monotonic()
    known = _KNOWN.get(ikey)
    if known and now - known[0] < settings.VPN_INTEGRATION_CACHE_SECONDS and known[1] == keys:
        return known[2], known[3]
    integration = Integration.objects.filter(integration_key=ikey).first()
    if integration is None:
        return None
    try:
        secret = crypto.decrypt(integration.encrypted_secret).decode()
    except Exception:  # a key missing from FACTOR_ENCRYPTION_KEYS: the caller refuses (API-07)
        secret = None
    if settings.VPN_INTEGRATION_CACHE_SECONDS > 0:
        _KNOWN[ikey] = (now, keys, integration, secret)
    return integration, secret
