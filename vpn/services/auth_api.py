"""The Duo Auth API's questions: the signed request (API-01, API-02), then preauth and auth about a person.

Every answer fails closed (API-07) and looks the same from outside for an unknown person, one without approved
access or a device, a locked one and a wrong code (API-04). Every outcome is audited with the integration and the
client's address (AC-06).
"""

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, TypeGuard, TypeVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from campaigns import texts
from campaigns.services import audit_password_alone, effective_policy, password_alone_allowed
from devices.selectors import has_enrolled
from devices.services import send_signin_code
from identity import audit, sql
from identity.models import User
from identity.services import SecondFactorOutcome

from .. import signing
from ..models import AuthTransaction, Integration, SeenSignature
from . import passcode
from .integrations import address_allowed, integration_for_key
from .people import device_id, devices_listing, may_use_vpn, vpn_factors, web_only_message

DENIED = "Login request denied."
CODES_SENT = "If you have a phone with us, a new code is on its way."
CALLING = "If you have a phone with us, we are calling it to read you a code: sign in again with it as your passcode."
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
# API-10: requests no VPN sends, refused from their headers before any work (no statement, no audit event).
BAD_REQUEST = (400, 40003, "Bad request")
TOO_LARGE = (413, 41301, "Request body too large")
NOT_FOUND = (404, 40401, "Resource not found")
INTERNAL = (500, 50000, "Internal error")


def api_error(kind: tuple[int, int, str], detail: str = "") -> ApiError:
    status, code, message = kind
    return ApiError(status, code, f"{message}: {detail}" if detail else message)


# --- Signed requests (API-01, API-02) ----------------------------------------------------------------


def _refuse(kind: tuple[int, int, str], *, integration_key: str | None, client_ip: str | None, reason: str) -> ApiError:
    audit.record("vpn.api_refused", ip=client_ip, details={"integration": integration_key, "reason": reason})
    return api_error(kind)


def _remember_signature(integration: Integration, signature: str, now: datetime) -> bool:
    """Store the signature's digest; False when it was stored before (a replay).

    In the request's transaction: a concurrent request with the same signature waits for this one to commit, then
    finds the digest stored. :func:`forget_spent_state` deletes the digests whose dates can no longer pass.
    """
    digest = hashlib.sha256(signature.encode()).hexdigest()
    params = {"integration": integration.pk, "digest": digest, "now": now}
    return sql.execute(_REMEMBER, params, fetch="one") is not None


_Answer = TypeVar("_Answer")

_REMEMBER = (
    f"INSERT INTO {SeenSignature._meta.db_table} (integration_id, digest, seen_at) "  # noqa: S608 (our table)
    "VALUES (%(integration)s, %(digest)s, %(now)s) ON CONFLICT (integration_id, digest) DO NOTHING RETURNING id"
)


def answer_signed(
    request: signing.SignedRequest,
    *,
    authorization: str,
    client_ip: str | None,
    handle: Callable[[Integration], _Answer],
) -> _Answer:
    """Authenticate ``request`` and return ``handle(integration)``, all in the request's one transaction.

    Raises ``ApiError`` in Duo's shape for a refusal, its audit event committed (so is a refusal ``handle`` raises).
    Anything else propagates: the caller answers it with an error, never ``allow`` (API-07).
    """
    with transaction.atomic():
        try:
            integration = authenticate(request, authorization=authorization, client_ip=client_ip)
            return handle(integration)
        except ApiError as error:
            refusal = error
    raise refusal


def authenticate(request: signing.SignedRequest, *, authorization: str, client_ip: str | None) -> Integration:
    """The integration that signed ``request``, or ``ApiError`` in Duo's shape; every refusal is audited.

    Checks, in order: credentials present, integration known, signature (v5 or v2, constant time), enabled,
    date within ``VPN_SIGNATURE_MAX_SKEW_SECONDS``, client network, and that the signature was never seen before.
    """
    credentials = signing.parse_basic(authorization)
    if credentials is None:
        raise _refuse(MISSING_CREDENTIALS, integration_key=None, client_ip=client_ip, reason="no credentials")
    ikey, signature = credentials
    known = integration_for_key(ikey)
    if known is None or not hmac.compare_digest(known[0].integration_key, ikey):
        raise _refuse(UNKNOWN_INTEGRATION, integration_key=None, client_ip=client_ip, reason="unknown integration")
    integration, secret = known
    if secret is None:  # a key missing from FACTOR_ENCRYPTION_KEYS: nobody gets in (API-07)
        raise _refuse(BAD_SIGNATURE, integration_key=ikey, client_ip=client_ip, reason="secret unreadable")
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


def _person_name(params: dict) -> str:
    """The institution ID the VPN names the person by (``username``, or Duo's ``user_id``, which is ours too)."""
    name: str | None = params.get("username") or params.get("user_id")
    if not name:
        raise api_error(MISSING_PARAMS, "username or user_id")
    return name


def _find_person(params: dict) -> User | None:
    return User.objects.filter(is_active=True, username=_person_name(params)).first()


def preauth(integration: Integration, params: dict, *, client_ip: str | None) -> dict:
    """Duo's preauth: ``deny`` (unknown, no approved access, locked), ``enroll`` (no device a VPN can use), or
    ``auth`` with the devices and their capabilities. Never ``push``.

    ``allow`` only for a person with approved access and no device at all whose campaigns let them in with the
    password alone now (:func:`campaigns.services.password_alone_allowed`), told by when to enroll and where;
    audited as ``vpn.password_alone_allowed`` with the campaign. ``deny`` in the help desk's words for one whose
    last device was reported lost (BND-02). Otherwise audits ``vpn.preauth`` (naming the campaign that requires
    enrollment, when one does). Campaigns are asked only on the branch without a usable device: an
    enrolled person's preauth costs what it did.
    """
    user = _find_person(params)
    context = {"integration": integration.integration_key, "user_ip": params.get("ipaddr", "")}
    answer: dict[str, object]
    if not may_use_vpn(user):
        answer = {"result": "deny", "status_msg": NOT_ALLOWED_MSG}
    else:
        factors = vpn_factors(user)
        if not factors.usable:
            # No code to give: the campaigns decide for one who has not enrolled (the rule the reminders and the
            # progress page count by); one with only a passkey or a security key has, and is told it is web only.
            enrolled = has_enrolled(user)
            policy = None if enrolled else effective_policy(user)
            if policy is not None and password_alone_allowed(user, policy):
                # Duo's "allow access without 2FA": the VPN lets the person in without asking auth.
                audit_password_alone(user, policy, door="auth_api", ip=client_ip, context=context)
                return {"result": "allow", "status_msg": texts.allowed_for_now(policy)}
            if not enrolled and user.setup_on_hold:
                # Their last device was reported lost (BND-02): nothing to enroll here, the help desk reopens it.
                answer = {"result": "deny", "status_msg": texts.held_at_the_vpn()}
                details = {**context, "result": "deny", "reason": "last device reported lost"}
                audit.record("vpn.preauth", subject=user, ip=client_ip, details=details)
                return answer
            answer = {
                "result": "enroll",
                # A passkey cannot answer a passcode: the person hears that, not "set up a device" (they have one).
                "status_msg": texts.enroll_first(policy)
                if policy
                else web_only_message(user) or "Set up a device for two-factor sign-in first.",
                "enroll_portal_url": texts.enrollment_address(),
            }
            if policy is not None:
                context = {**context, "campaign": policy.campaign_id}
        else:
            answer = {"result": "auth", "status_msg": "Account is active", "devices": devices_listing(factors)}
    audit.record("vpn.preauth", subject=user, ip=client_ip, details={**context, "result": answer["result"]})
    return answer


def _deny(status_msg: str = DENIED, status: str = "deny") -> dict:
    return {"result": "deny", "status": status, "status_msg": status_msg}


# The channel a phone must take for each of Duo's factors that send a code.
_CHANNEL = {"sms": "sms", "phone": "voice"}


def _names_a_device(wanted: str | None) -> TypeGuard[str]:
    return bool(wanted) and wanted != "auto"


def _pick_phone(phones: list, *, wanted: str | None, channel: str) -> Any:
    """The phone to send a code to over ``channel``: the one ``wanted`` names, or for ``auto`` (or none named) the
    first that can take ``channel``, as Duo's ``auto`` picks the first device capable of the factor. None when there
    is no such phone, or ``wanted`` names none of ``phones``.

    Raises ``ApiError`` (40002, ``device``) when ``wanted`` names one of ``phones`` that cannot take ``channel`` (a
    landline asked to text), as Duo refuses a device that is not capable of the factor.
    """
    if _names_a_device(wanted):
        device = next((d for d in phones if hmac.compare_digest(device_id(d), wanted)), None)
        if device is not None and channel not in device.challenge_channels:
            raise api_error(INVALID_PARAMS, "device")
        return device
    return next((d for d in phones if channel in d.challenge_channels), None)


def _send_code(
    user: User | None,
    phones: list,
    *,
    allowed: bool,
    factor: str,
    wanted: str | None,
    client_ip: str | None,
    context: dict,
) -> dict:
    """Text (``sms``) or call (``phone``, a spoken code) a sign-in code; the same answer whether sent or not.

    Sends only when ``allowed`` (the person may use the VPN) and a phone of ``phones`` can take the factor. Duo
    answers ``sms`` with ``deny``/``sms_sent`` ("sign in again with a new code"), and ``phone`` with the call's
    outcome, ``allow`` or ``deny``, once it is over. Our call reads a code and cannot confirm anyone, so its outcome
    is Duo's ``deny``/``deny``, with words that say to sign in again with the code read out. Audits
    ``vpn.code_requested`` (also for the refusal :func:`_pick_phone` raises, which propagates).
    """
    channel = _CHANNEL[factor]
    details = {**context, "factor": factor, "sent": False}
    try:
        device = _pick_phone(phones, wanted=wanted, channel=channel)
    except ApiError:
        details["reason"] = "the phone it named cannot get a code that way"
        audit.record("vpn.code_requested", subject=user, ip=client_ip, details=details)
        raise
    if device is not None and allowed:
        try:
            send_signin_code(device, channel=channel, ip=client_ip)
            details["sent"] = True
        except ValidationError:
            pass  # send limits: audited by the send path's refusal, answered like any other
    audit.record("vpn.code_requested", subject=user, ip=client_ip, details=details)
    if factor == "sms":
        return _deny(CODES_SENT, status="sms_sent")
    return _deny(CALLING)


def auth(integration: Integration, params: dict, *, client_ip: str | None) -> dict:
    """Duo's auth: verify a passcode, or send a code by text or call. Returns Duo's result dict.

    ``factor=passcode`` (or ``auto`` with a passcode) goes through :func:`.passcode.verify_passcode` with
    ``entry_point="vpn"``: the lockout and the used codes are shared with the web (OTP-01, OTP-04). ``sms`` and
    ``phone`` queue a code through the outbox and answer ``deny``, as Duo does (``sms_sent`` for a text);
    ``auto`` without a passcode is ``phone``. Anyone who may not use the VPN gets the answer a wrong code gets
    (API-04). Raises ``ApiError`` for bad parameters before anyone is looked up (a ``device`` that is not ASCII, an
    empty ``passcode`` with ``auto`` or ``passcode``), and for a ``device`` naming one of the person's phones that
    cannot take the factor (:func:`_pick_phone`). Every outcome is audited.
    """
    factor = params.get("factor", "")
    typed = params.get("passcode")
    if typed == "" and factor in ("auto", "passcode"):
        # An empty passcode box sent as it is: neither a wrong code to count nor, with ``auto``, a call to place.
        raise api_error(INVALID_PARAMS, "passcode")
    if factor == "auto":
        factor = "phone" if typed is None else "passcode"
    if factor not in ("passcode", "sms", "phone", "push"):
        raise api_error(INVALID_PARAMS, "factor")
    if factor == "passcode" and typed is None:
        raise api_error(MISSING_PARAMS, "passcode")
    wanted = params.get("device")
    if wanted is not None and not wanted.isascii():
        # Our device ids are ASCII (``DP...``): another is nobody's, refused before anyone is looked up (the same
        # answer whoever is named, API-04), and never compared, which hmac.compare_digest cannot do for such text.
        raise api_error(INVALID_PARAMS, "device")
    context = {"integration": integration.integration_key, "user_ip": params.get("ipaddr", "")}
    if factor == "passcode":
        verdict = passcode.verify_passcode(
            _person_name(params), str(typed), ip=client_ip, entry_point="vpn", context=context
        )
        return _passcode_answer(verdict, client_ip=client_ip, context=context)
    user = _find_person(params)
    if factor == "push":
        audit.record("vpn.auth_denied", subject=user, ip=client_ip, details={**context, "reason": "no push"})
        return _deny("Push is not offered here: enter a code from your app, or ask for a text or a call.")
    allowed = may_use_vpn(user)
    # A named phone is judged by what it can take whatever the person's access or lockout, so the refusal of a
    # landline asked to text tells the holder of its id nothing more about them (API-04).
    phones = vpn_factors(user).phones if user is not None and (allowed or _names_a_device(wanted)) else []
    return _send_code(user, phones, allowed=allowed, factor=factor, wanted=wanted, client_ip=client_ip, context=context)


def _passcode_answer(verdict: passcode.Verdict, *, client_ip: str | None, context: dict) -> dict:
    """Duo's answer to a passcode; a person who may not use the VPN or has no device is refused here, audited."""
    if verdict.outcome == passcode.REFUSED:
        verdict.audit_refusal("vpn.auth_denied", ip=client_ip, context=context)
        return _deny()
    if verdict.outcome == SecondFactorOutcome.OK:
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
