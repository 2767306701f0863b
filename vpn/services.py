"""The VPN gate: integrations and RADIUS clients (API-03), signed Auth API requests (API-01, API-02), and the
questions a VPN asks about a person (preauth, auth), answered through the same second-factor check as the web.

Every answer fails closed (API-07) and looks the same from outside for an unknown person, one without approved
access or a device, a locked one and a wrong code (API-04). Every outcome is audited with the integration and the
client's address (AC-06).
"""

import hashlib
import hmac
import ipaddress
import secrets
import string
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone
from django_otp import device_classes

from devices import crypto
from devices.services import send_signin_code
from identity import audit
from identity.models import User
from identity.services import SecondFactorOutcome, verify_typed_code

from . import signing
from .models import AuthTransaction, Integration, RadiusChallenge, RadiusClient, SeenSignature, parse_networks

_KEY_ALPHABET = string.ascii_uppercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits

DENIED = "Login request denied."
CODES_SENT = "If you have a phone with us, a new code is on its way."
NOT_ALLOWED_MSG = "You cannot use the VPN yet. Ask the help desk for VPN access."


class ApiError(Exception):
    """A refusal in Duo's error shape: HTTP status, Duo's numeric code, a message."""

    def __init__(self, http_status: int, code: int, message: str):
        super().__init__(message)
        self.http_status, self.code, self.message = http_status, code, message


MISSING_CREDENTIALS = (401, 40101, "Missing request credentials")
UNKNOWN_INTEGRATION = (401, 40102, "Invalid integration key in request credentials")
BAD_SIGNATURE = (401, 40103, "Invalid signature in request credentials")
BAD_DATE = (401, 40105, "Request date missing, invalid or more than 300 seconds from the server's clock")
REPLAYED = (401, 40103, "Invalid signature in request credentials: this signature was used before")
DISABLED = (403, 40301, "Access forbidden: this integration is disabled")
NETWORK = (403, 40301, "Access forbidden: the client address is outside this integration's networks")
MISSING_PARAMS = (400, 40001, "Missing required request parameters")
INVALID_PARAMS = (400, 40002, "Invalid request parameters")


def api_error(kind: tuple[int, int, str], detail: str = "") -> ApiError:
    status, code, message = kind
    return ApiError(status, code, f"{message}: {detail}" if detail else message)


# --- Integrations and RADIUS clients (API-03) -------------------------------------------------------


def new_integration_key() -> str:
    return "DI" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(18))


def new_secret() -> str:
    """40 characters of 62 (238 bits, OTP-07's >= 160)."""
    return "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))


def _clean_networks(text: str) -> str:
    return "\n".join(str(network) for network in parse_networks(text))


def create_integration(*, name: str, allowed_networks: str = "", actor, ip: str | None = None):
    """Create an enabled integration; return ``(integration, secret)``. The secret is never readable again.

    Audits ``vpn.integration_created``. Raises ``ValidationError`` for an empty name or a bad network. The caller
    must have checked that ``actor`` may (a superuser, or someone at the server's shell).
    """
    name = name.strip()
    if not name:
        raise ValidationError("Give the integration a name.")
    networks = _clean_networks(allowed_networks)
    secret = new_secret()
    with transaction.atomic():
        integration = Integration.objects.create(
            name=name,
            integration_key=new_integration_key(),
            encrypted_secret=crypto.encrypt(secret.encode()),
            allowed_networks=networks,
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        audit.record(
            "vpn.integration_created",
            actor=actor,
            ip=ip,
            details={"integration": integration.integration_key, "name": name, "networks": networks},
        )
    return integration, secret


def update_integration(integration: Integration, *, name: str, allowed_networks: str, enabled: bool, actor, ip=None):
    """Change an integration's name, networks or enabled flag; audits ``vpn.integration_changed`` with what changed.

    Raises ``ValidationError`` for a bad network. The caller must have checked that ``actor`` may.
    """
    networks = _clean_networks(allowed_networks)
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
        audit.record(
            "vpn.integration_changed",
            actor=actor,
            ip=ip,
            details={"integration": row.integration_key, **changed},
        )
    return row


def _rotate(row, *, action: str, details_of, actor, ip: str | None) -> str:
    secret = new_secret()
    with transaction.atomic():
        row = type(row).objects.select_for_update().get(pk=row.pk)
        row.encrypted_secret = crypto.encrypt(secret.encode())
        row.secret_rotated_at = timezone.now()
        row.save(update_fields=["encrypted_secret", "secret_rotated_at"])
        audit.record(action, actor=actor, ip=ip, details=details_of(row))
    return secret


def rotate_integration_secret(integration: Integration, *, actor, ip: str | None = None) -> str:
    """Give the integration a new secret at once (the old one stops working); return it, to be shown once.

    Audits ``vpn.integration_rotated``. The caller must have checked that ``actor`` may.
    """
    return _rotate(
        integration,
        action="vpn.integration_rotated",
        details_of=lambda row: {"integration": row.integration_key},
        actor=actor,
        ip=ip,
    )


def create_radius_client(*, name: str, network: str, actor, ip: str | None = None):
    """Create a RADIUS client for ``network``; return ``(client, shared_secret)``, the secret shown once.

    Audits ``vpn.radius_client_created``. Raises ``ValidationError`` for an empty name or a bad network.
    """
    name = name.strip()
    if not name:
        raise ValidationError("Give the RADIUS client a name.")
    networks = parse_networks(network)
    if len(networks) != 1:
        raise ValidationError("Give exactly one network, like 10.0.0.5/32.")
    secret = new_secret()
    with transaction.atomic():
        client = RadiusClient.objects.create(
            name=name,
            network=str(networks[0]),
            encrypted_secret=crypto.encrypt(secret.encode()),
            created_by=actor if getattr(actor, "pk", None) else None,
        )
        audit.record(
            "vpn.radius_client_created", actor=actor, ip=ip, details={"radius_client": name, "network": client.network}
        )
    return client, secret


def update_radius_client(client: RadiusClient, *, name: str, network: str, enabled: bool, actor, ip=None):
    """Change a RADIUS client's name, network or enabled flag; audits ``vpn.radius_client_changed``."""
    networks = parse_networks(network)
    if len(networks) != 1:
        raise ValidationError("Give exactly one network, like 10.0.0.5/32.")
    with transaction.atomic():
        row = RadiusClient.objects.select_for_update().get(pk=client.pk)
        new = {"name": name.strip(), "network": str(networks[0]), "enabled": enabled}
        changed = {field: value for field, value in new.items() if getattr(row, field) != value}
        if not changed:
            return row
        for field, value in new.items():
            setattr(row, field, value)
        row.save(update_fields=list(new))
        audit.record("vpn.radius_client_changed", actor=actor, ip=ip, details={"radius_client": row.name, **changed})
    return row


def rotate_radius_secret(client: RadiusClient, *, actor, ip: str | None = None) -> str:
    """A new shared secret for the client, returned to be shown once; audits ``vpn.radius_client_rotated``."""
    return _rotate(
        client,
        action="vpn.radius_client_rotated",
        details_of=lambda row: {"radius_client": row.name},
        actor=actor,
        ip=ip,
    )


def address_allowed(networks_text: str, address: str | None) -> bool:
    if not networks_text.strip():
        return True
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    return any(ip in network for network in parse_networks(networks_text))


# --- Signed requests (API-01, API-02) ----------------------------------------------------------------


def _refuse(kind, *, integration_key: str | None, client_ip: str | None, reason: str) -> ApiError:
    audit.record("vpn.api_refused", ip=client_ip, details={"integration": integration_key, "reason": reason})
    return api_error(kind)


def _remember_signature(integration: Integration, signature: str, now: datetime) -> bool:
    """Store the signature's digest; False when it was stored before (a replay).

    The same statement forgets signatures older than twice the window: their dates are refused before this
    check, so they can never be accepted again. One statement on PostgreSQL.
    """
    digest = hashlib.sha256(signature.encode()).hexdigest()
    table = SeenSignature._meta.db_table
    forget_before = now - timedelta(seconds=2 * settings.VPN_SIGNATURE_MAX_SKEW_SECONDS)
    insert = (
        f"INSERT INTO {table} (integration_id, digest, seen_at) VALUES (%s, %s, %s) "  # noqa: S608 (our table name)
        "ON CONFLICT (integration_id, digest) DO NOTHING RETURNING id"
    )
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            purge = f"WITH forgotten AS (DELETE FROM {table} WHERE seen_at < %s) "  # noqa: S608 (our table name)
            cursor.execute(purge + insert, [forget_before, integration.pk, digest, now])
        else:
            cursor.execute(f"DELETE FROM {table} WHERE seen_at < %s", [forget_before])  # noqa: S608
            cursor.execute(insert, [integration.pk, digest, now])
        return cursor.fetchone() is not None


def authenticate(request: signing.SignedRequest, *, authorization: str, client_ip: str | None) -> Integration:
    """The integration that signed ``request``, or ``ApiError`` in Duo's shape; every refusal is audited.

    Checks, in order: credentials present, integration known, signature (v5 or v2, constant time), enabled,
    date within ``VPN_SIGNATURE_MAX_SKEW_SECONDS``, client network, and that the signature was never seen before.
    """
    credentials = signing.parse_basic(authorization)
    if credentials is None:
        raise _refuse(MISSING_CREDENTIALS, integration_key=None, client_ip=client_ip, reason="no credentials")
    ikey, signature = credentials
    integration = Integration.objects.filter(integration_key=ikey).first()
    if integration is None or not hmac.compare_digest(integration.integration_key, ikey):
        raise _refuse(UNKNOWN_INTEGRATION, integration_key=None, client_ip=client_ip, reason="unknown integration")
    try:
        secret = crypto.decrypt(integration.encrypted_secret).decode()
    except Exception as error:  # a key missing from FACTOR_ENCRYPTION_KEYS: nobody gets in (API-07)
        raise _refuse(BAD_SIGNATURE, integration_key=ikey, client_ip=client_ip, reason="secret unreadable") from error
    if not signing.signature_matches(request, secret=secret, signature=signature):
        raise _refuse(BAD_SIGNATURE, integration_key=ikey, client_ip=client_ip, reason="bad signature")
    if not integration.enabled:
        raise _refuse(DISABLED, integration_key=ikey, client_ip=client_ip, reason="integration disabled")
    now = timezone.now()
    try:
        signed_at = parsedate_to_datetime(request.date)
        if signed_at.tzinfo is None:
            signed_at = signed_at.replace(tzinfo=UTC)
    except (TypeError, ValueError):
        signed_at = None
    if signed_at is None or abs((now - signed_at).total_seconds()) > settings.VPN_SIGNATURE_MAX_SKEW_SECONDS:
        raise _refuse(BAD_DATE, integration_key=ikey, client_ip=client_ip, reason="date outside the window")
    if not address_allowed(integration.allowed_networks, client_ip):
        raise _refuse(NETWORK, integration_key=ikey, client_ip=client_ip, reason="address outside the networks")
    if not _remember_signature(integration, signature, now):
        raise _refuse(REPLAYED, integration_key=ikey, client_ip=client_ip, reason="replayed signature")
    return integration


# --- What the VPN asks about a person ------------------------------------------------------------------


def _find_person(params: dict) -> User | None:
    username, user_id = params.get("username"), params.get("user_id")
    if not (username or user_id):
        raise api_error(MISSING_PARAMS, "username or user_id")
    lookup = {"username": username} if username else {"username": user_id}
    return User.objects.filter(is_active=True, **lookup).first()


def device_id(device) -> str:
    """An opaque, stable id in Duo's ``DP...`` shape; our database ids stay inside."""
    digest = hmac.new(settings.SECRET_KEY.encode(), device.persistent_id.encode(), hashlib.sha256).digest()
    return "DP" + "".join(_KEY_ALPHABET[b % len(_KEY_ALPHABET)] for b in digest[:18])


@dataclass
class Factors:
    """A person's confirmed devices that a VPN can use: those that take a typed code, and the phones among them."""

    typed: list
    phones: list

    @property
    def usable(self) -> bool:
        return bool(self.typed)


def vpn_factors(user: User) -> Factors:
    """The person's confirmed devices that take a typed code: every django-otp device model but those that say
    they do not (security keys), one query per model, as ``devices_for_user`` does it."""
    typed = [
        device
        for model in device_classes()
        if getattr(model, "accepts_typed_code", True)
        for device in model.objects.devices_for_user(user, confirmed=True)
    ]
    # App codes first: the common case on the hot path.
    typed.sort(key=lambda d: {"authenticator_app": 0, "phone": 1}.get(getattr(d, "factor_name", ""), 2))
    phones = [d for d in typed if getattr(d, "factor_name", "") == "phone"]
    return Factors(typed=typed, phones=phones)


def _devices_listing(factors: Factors) -> list[dict]:
    listing = []
    for device in factors.typed:
        kind = getattr(device, "factor_name", "")
        if kind == "authenticator_app":
            capabilities = ["mobile_otp"]
            entry = {"type": "phone", "name": device.name, "display_name": f"{device.name} (app codes)"}
        elif kind == "phone":
            capabilities = ["sms", "phone"] if device.can_text else ["phone"]
            entry = {
                "type": "phone",
                "number": device.masked_number,
                "name": device.name,
                "display_name": f"{device.name} ({device.masked_number})",
            }
        else:
            continue
        listing.append({"device": device_id(device), "capabilities": capabilities, **entry})
    return listing


def _may_use_vpn(user: User | None) -> bool:
    return user is not None and user.vpn_access == User.VpnAccess.APPROVED and not user.is_locked


def preauth(integration: Integration, params: dict, *, client_ip: str | None) -> dict:
    """Duo's preauth: ``deny`` (unknown, no approved access, locked), ``enroll`` (no device a VPN can use), or
    ``auth`` with the devices and their capabilities. Never ``allow``, never ``push``. Audits ``vpn.preauth``."""
    user = _find_person(params)
    context = {"integration": integration.integration_key, "user_ip": params.get("ipaddr", "")}
    if not _may_use_vpn(user):
        answer = {"result": "deny", "status_msg": NOT_ALLOWED_MSG}
    else:
        factors = vpn_factors(user)
        if not factors.usable:
            portal = settings.SITE_URL + reverse("devices:start")
            answer = {
                "result": "enroll",
                "status_msg": "Set up a device for two-factor sign-in first.",
                "enroll_portal_url": portal,
            }
        else:
            answer = {"result": "auth", "status_msg": "Account is active", "devices": _devices_listing(factors)}
    audit.record("vpn.preauth", subject=user, ip=client_ip, details={**context, "result": answer["result"]})
    return answer


def _deny(status_msg: str = DENIED, status: str = "deny") -> dict:
    return {"result": "deny", "status": status, "status_msg": status_msg}


def _pick_phone(factors: Factors, wanted: str | None):
    if wanted and wanted != "auto":
        return next((d for d in factors.phones if hmac.compare_digest(device_id(d), wanted)), None)
    return factors.phones[0] if factors.phones else None


def _send_code(user: User | None, factors: Factors | None, *, factor: str, wanted, client_ip, context) -> dict:
    """Text (``sms``) or call (``phone``, a spoken code) a sign-in code; the same answer whether sent or not."""
    device = _pick_phone(factors, wanted) if factors else None
    sent = False
    if device is not None:
        channel = "sms" if factor == "sms" and device.can_text else "voice"
        if factor == "sms" and not device.can_text:
            channel = None
        if channel:
            try:
                send_signin_code(device, channel=channel, ip=client_ip)
                sent = True
            except ValidationError:
                sent = False  # send limits: audited by the send path's refusal, answered like any other
    audit.record("vpn.code_requested", subject=user, ip=client_ip, details={**context, "factor": factor, "sent": sent})
    return _deny(CODES_SENT, status="sms_sent")


def auth(integration: Integration, params: dict, *, client_ip: str | None) -> dict:
    """Duo's auth: verify a passcode, or send a code by text or call. Returns Duo's result dict.

    ``factor=passcode`` (or ``auto`` with a passcode) goes through :func:`identity.services.verify_typed_code` with
    ``entry_point="vpn"``: the lockout and the used codes are shared with the web (OTP-01, OTP-04). ``sms`` and
    ``phone`` queue a code through the outbox and answer ``deny`` with ``sms_sent``, as Duo does for ``sms``.
    Anyone who may not use the VPN gets the answer a wrong code gets (API-04). Raises ``ApiError`` for bad
    parameters. Every outcome is audited.
    """
    factor = params.get("factor", "")
    passcode = params.get("passcode")
    if factor == "auto":
        factor = "passcode" if passcode else "phone"
    if factor not in ("passcode", "sms", "phone", "push"):
        raise api_error(INVALID_PARAMS, "factor")
    if factor == "passcode" and not passcode:
        raise api_error(MISSING_PARAMS, "passcode")
    user = _find_person(params)
    context = {"integration": integration.integration_key, "user_ip": params.get("ipaddr", "")}
    if factor == "push":
        audit.record("vpn.auth_denied", subject=user, ip=client_ip, details={**context, "reason": "no push"})
        return _deny("Push is not offered here: enter a code from your app, or ask for a text or a call.")
    factors = vpn_factors(user) if _may_use_vpn(user) else None
    if factor in ("sms", "phone"):
        return _send_code(
            user, factors, factor=factor, wanted=params.get("device"), client_ip=client_ip, context=context
        )
    if factors is None or not factors.usable:
        reason = "unknown person" if user is None else "not allowed or no device"
        audit.record("vpn.auth_denied", subject=user, ip=client_ip, details={**context, "reason": reason})
        return _deny()
    outcome = verify_typed_code(
        user, devices=factors.typed, code=str(passcode), ip=client_ip, entry_point="vpn", context=context
    )
    if outcome == SecondFactorOutcome.OK:
        return {"result": "allow", "status": "allow", "status_msg": "Success. Logging you in..."}
    return _deny()


def record_async(integration: Integration, answer: dict) -> str:
    """Keep an ``auth`` answer for ``auth_status``; return its txid."""
    txid = secrets.token_hex(16)
    AuthTransaction.objects.create(
        txid=txid,
        integration=integration,
        result=answer["result"],
        status=answer["status"],
        status_msg=answer["status_msg"],
        created_at=timezone.now(),
    )
    return txid


ASYNC_ANSWER_KEPT = timedelta(minutes=10)


def auth_status(integration: Integration, params: dict) -> dict:
    """The answer kept for ``txid`` (for 10 minutes, and only for the integration that asked)."""
    txid = params.get("txid")
    if not txid:
        raise api_error(MISSING_PARAMS, "txid")
    since = timezone.now() - ASYNC_ANSWER_KEPT
    row = AuthTransaction.objects.filter(txid=txid, integration=integration, created_at__gte=since).first()
    if row is None:
        raise api_error(INVALID_PARAMS, "txid")
    return {"result": row.result, "status": row.status, "status_msg": row.status_msg}


# --- RADIUS (API-05, API-08) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RadiusAnswer:
    """``accept``, ``reject`` or ``challenge`` (with the State to send and the prompt)."""

    outcome: str
    message: str
    state: bytes | None = None


RADIUS_DENIED = "Access denied."
RADIUS_PROMPT = "Enter a code from your authenticator app, a text or a call, or a backup code."


def radius_client_for(address: str) -> RadiusClient | None:
    """The enabled RADIUS client whose network holds ``address`` (the narrowest one), or None."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    # Listening on "::" (dual stack), an IPv4 VPN's packets arrive from "::ffff:10.0.0.5".
    ip = getattr(ip, "ipv4_mapped", None) or ip
    matches = [c for c in RadiusClient.objects.filter(enabled=True) if ip in ipaddress.ip_network(c.network)]
    return max(matches, key=lambda c: ipaddress.ip_network(c.network).prefixlen, default=None)


def radius_secret(client: RadiusClient) -> bytes:
    return crypto.decrypt(client.encrypted_secret)


def _state_hash(state: bytes) -> str:
    return hashlib.sha256(state).hexdigest()


def _check_password(username: str, password: str, *, ip: str | None) -> User | None:
    """The person whose password this is, through Django's backends (unknown IDs cost a hash too), with the
    password throttle and failure audit of the web sign-in."""
    from django.contrib.auth import authenticate as django_authenticate

    from identity.services import password_sign_in_throttled, record_password_failure, record_password_success

    if password_sign_in_throttled(username, ip=ip):
        return None
    user = django_authenticate(username=username, password=password)
    if user is None:
        known = User.objects.filter(username=username).first()
        record_password_failure(username, username_known_user=known, ip=ip)
        return None
    record_password_success(user, ip=ip)
    return user


def _radius_code(user: User | None, code: str, *, client: RadiusClient, ip: str | None) -> RadiusAnswer:
    context = {"radius_client": client.name}
    factors = vpn_factors(user) if _may_use_vpn(user) else None
    if factors is None or not factors.usable:
        reason = "unknown person" if user is None else "not allowed or no device"
        audit.record("vpn.radius_rejected", subject=user, ip=ip, details={**context, "reason": reason})
        return RadiusAnswer("reject", RADIUS_DENIED)
    outcome = verify_typed_code(user, devices=factors.typed, code=code, ip=ip, entry_point="radius", context=context)
    if outcome == SecondFactorOutcome.OK:
        return RadiusAnswer("accept", "Welcome.")
    return RadiusAnswer("reject", RADIUS_DENIED)


def _answer_challenge(state: bytes, code: str, *, username: str, client: RadiusClient, ip: str | None):
    """Consume the State (once, before it expires, for this client and person) and check the code."""
    now = timezone.now()
    with transaction.atomic():
        challenge = (
            RadiusChallenge.objects.select_for_update()
            .select_related("user")
            .filter(state_hash=_state_hash(state), consumed_at=None, expires_at__gt=now)
            .first()
        )
        fits = (
            challenge is not None
            and challenge.client_id == client.pk
            and hmac.compare_digest(challenge.user.username.encode(), username.encode())
        )
        if challenge is not None:
            challenge.consumed_at = now
            challenge.save(update_fields=["consumed_at"])
    if not fits:
        audit.record(
            "vpn.radius_rejected", ip=ip, details={"radius_client": client.name, "reason": "state not valid here"}
        )
        return RadiusAnswer("reject", RADIUS_DENIED)
    return _radius_code(challenge.user, code, client=client, ip=ip)


def radius_authenticate(
    client: RadiusClient, *, username: str, password: str, state: bytes | None, ip: str | None
) -> RadiusAnswer:
    """Answer one Access-Request whose Message-Authenticator the server has checked (API-08).

    With ``RADIUS_PASSWORD_MODE = "password"``: ``password,code`` checks both at once; the password alone,
    when right, answers a challenge whose State (random, single-use, bound to person and client, expiring after
    ``RADIUS_CHALLENGE_TTL_SECONDS``, API-05) comes back with the code. With ``"code_only"`` the VPN has checked
    the password itself and the field holds the code. VPN approval and a second factor are always required,
    through the lockout shared with the web (OTP-01). Every outcome is audited; the answers to an unknown person,
    one without access or device, a locked one and a wrong code are the same (API-04).
    """
    if state:
        return _answer_challenge(state, password, username=username, client=client, ip=ip)
    if settings.RADIUS_PASSWORD_MODE == "code_only":
        return _radius_code(
            User.objects.filter(username=username, is_active=True).first(), password, client=client, ip=ip
        )
    secret_part, comma, code = password.rpartition(",")
    if not comma:
        secret_part, code = password, ""
    user = _check_password(username, secret_part, ip=ip)
    if user is None:
        return RadiusAnswer("reject", RADIUS_DENIED)
    if code:
        return _radius_code(user, code, client=client, ip=ip)
    state = secrets.token_bytes(32)
    ttl = min(settings.RADIUS_CHALLENGE_TTL_SECONDS, 120)
    with transaction.atomic():
        RadiusChallenge.objects.create(
            state_hash=_state_hash(state),
            user=user,
            client=client,
            expires_at=timezone.now() + timedelta(seconds=ttl),
        )
        audit.record("vpn.radius_challenged", subject=user, ip=ip, details={"radius_client": client.name})
    return RadiusAnswer("challenge", RADIUS_PROMPT, state)


def forget_spent_state(now: datetime | None = None) -> dict[str, int]:
    """Delete async answers no longer readable and RADIUS challenges past their expiry; return how many of each.

    Neither can be used any more (``auth_status`` and the State check refuse them), so nothing changes for anyone;
    the tables just stop growing. Audits nothing. Called by beat; safe to run again.
    """
    now = now or timezone.now()
    answers, _ = AuthTransaction.objects.filter(created_at__lt=now - ASYNC_ANSWER_KEPT).delete()
    challenges, _ = RadiusChallenge.objects.filter(expires_at__lt=now).delete()
    return {"async_answers": answers, "radius_challenges": challenges}
