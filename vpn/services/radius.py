"""RADIUS answers (API-05, API-08): a VPN's Access-Request, once the server has checked its Message-Authenticator."""

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from devices import crypto
from identity import audit
from identity.directory.backends import Answer, PasswordCheck, check_password
from identity.models import User
from identity.services import SecondFactorOutcome, verify_typed_code

from ..models import AuthTransaction, RadiusChallenge, RadiusClient, SeenSignature
from . import passcode as passcode_lane
from .auth_api import ASYNC_ANSWER_KEPT
from .people import may_use_vpn, vpn_factors


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


def _check_password(username: str, password: str, *, ip: str | None) -> PasswordCheck | None:
    """Whose password this is, through the site's one password check (a directory person's by the directory only,
    DIR-01; unknown IDs cost a hash too), with the password throttle and failure audit of the web sign-in. None
    when throttled."""
    from identity.services import password_sign_in_throttled, record_password_failure, record_password_success

    if password_sign_in_throttled(username, ip=ip):
        return None
    checked = check_password(username, password)
    if checked.user is None:
        if checked.counts_as_failure:
            known = User.objects.filter(username=username).first()
            record_password_failure(username, username_known_user=known, ip=ip)
        return checked
    record_password_success(checked.user, ip=ip)
    return checked


def _radius_code(username: str, code: str, *, client: RadiusClient, ip: str | None) -> RadiusAnswer:
    """Check the code of an active ``username`` (through the VPN's passcode lane, else the general path)."""
    context = {"radius_client": client.name}
    verdict = passcode_lane.check(username, code, ip=ip, entry_point="radius", context=context)
    if verdict is None:
        user = User.objects.filter(username=username, is_active=True).first()
        factors = vpn_factors(user) if may_use_vpn(user) else None
        if factors is None or not factors.usable:
            verdict = passcode_lane.Verdict(None, user.pk if user else None)
        else:
            outcome = verify_typed_code(
                user, devices=factors.typed, code=code, ip=ip, entry_point="radius", context=context
            )
            verdict = passcode_lane.Verdict(outcome, user.pk)
    if verdict.outcome is None:
        verdict.audit_refusal("vpn.radius_rejected", ip=ip, context=context)
        return RadiusAnswer("reject", RADIUS_DENIED)
    if verdict.outcome == SecondFactorOutcome.OK:
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
    return _radius_code(challenge.user.username, code, client=client, ip=ip)


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
        return _radius_code(username, password, client=client, ip=ip)
    secret_part, comma, code = password.rpartition(",")
    if not comma:
        secret_part, code = password, ""
    checked = _check_password(username, secret_part, ip=ip)
    if checked is None or checked.user is None:
        # The directory's own answers (locked, expired, unreachable...) say where to go; a wrong password says nothing.
        told = checked is not None and checked.answer != Answer.WRONG_PASSWORD
        return RadiusAnswer("reject", checked.message if told else RADIUS_DENIED)
    user = checked.user
    if code:
        return _radius_code(user.username, code, client=client, ip=ip)
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
    """Delete what can no longer be used: async answers no longer readable, RADIUS challenges past their expiry,
    and remembered signatures (API-02) older than twice the date window; return how many of each.

    ``auth_status`` and the State check refuse the first two, and a signature's date is refused before its digest
    is looked at, so nothing changes for anyone; the tables just stop growing. Audits nothing. Called by beat;
    safe to run again.
    """
    now = now or timezone.now()
    answers, _ = AuthTransaction.objects.filter(created_at__lt=now - ASYNC_ANSWER_KEPT).delete()
    challenges, _ = RadiusChallenge.objects.filter(expires_at__lt=now).delete()
    signatures_before = now - timedelta(seconds=2 * settings.VPN_SIGNATURE_MAX_SKEW_SECONDS)
    signatures, _ = SeenSignature.objects.filter(seen_at__lt=signatures_before).delete()
    return {"async_answers": answers, "radius_challenges": challenges, "signatures": signatures}
