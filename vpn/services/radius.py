"""RADIUS answers (API-05, API-08): a VPN's Access-Request, once the server has checked its Message-Authenticator."""

import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django_otp import device_classes

from campaigns import texts
from campaigns.services import audit_password_alone, effective_policy, password_alone_allowed
from devices import backup_codes, crypto, kinds, phone_codes, totp
from devices.selectors import has_enrolled
from devices.services import send_signin_code
from identity import audit, sql
from identity.directory.backends import Answer, check_password
from identity.directory.pace import unknown_pace
from identity.models import User
from identity.services import (
    SecondFactorOutcome,
    password_sign_in_throttled,
    record_password_failure,
    record_password_success,
)

from ..models import AuthTransaction, RadiusChallenge, RadiusClient, SeenSignature
from . import passcode
from .auth_api import ASYNC_ANSWER_KEPT
from .people import Factors, may_use_vpn, vpn_factors, web_only_message


@dataclass(frozen=True)
class RadiusAnswer:
    """``accept``, ``reject`` or ``challenge`` (with the State to send and the prompt)."""

    outcome: str
    message: str
    state: bytes | None = None
    # Seconds after the check began before the reply may leave: a refusal that hashed no password waits as long as
    # the password checks it skipped would have taken, so the reply's timing tells no one who exists (API-04).
    not_before: float = 0.0


RADIUS_DENIED = "Access denied."
RADIUS_PROMPT = "Enter a code from your authenticator app, a text or a call, or a backup code."
# What a person may type instead of a code to have one sent (Duo's Auth Proxy words): "sms" texts it, "phone"
# calls; "sms2" picks the second phone that can take it.
_SEND_REPLY = re.compile(r"(sms|phone)([1-9]?)", re.IGNORECASE)
_CHANNELS = {"sms": "sms", "phone": "voice"}


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Client = TypeVar("_Client")


def radius_client_among(address: str, networks: Iterable[tuple[Network, _Client]]) -> _Client | None:
    """The client of ``(network, client)`` pairs whose network holds ``address`` (the narrowest one), or None."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    # Listening on "::" (dual stack), an IPv4 VPN's packets arrive from "::ffff:10.0.0.5".
    ip = getattr(ip, "ipv4_mapped", None) or ip
    matches = [(network, client) for network, client in networks if ip in network]
    return max(matches, key=lambda match: match[0].prefixlen, default=(None, None))[1]


def radius_client_for(address: str) -> RadiusClient | None:
    """The enabled RADIUS client whose network holds ``address`` (the narrowest one), or None."""
    clients = RadiusClient.objects.filter(enabled=True)
    return radius_client_among(address, ((ipaddress.ip_network(c.network), c) for c in clients))


def radius_secret(client: RadiusClient) -> bytes:
    return crypto.decrypt(client.encrypted_secret)


def _state_hash(state: bytes) -> str:
    return hashlib.sha256(state).hexdigest()


# A backup or help-desk bypass code: base32 characters, in groups or not.
_BACKUP_CODE_CHARS = backup_codes.CODE_BYTES * 8 // 5


def _looks_like_code(text: str) -> bool:
    """Whether ``text`` has the shape of a code a person can type: an app's or a text's digits, or a backup code."""
    text = text.strip()
    if totp.normalize(text) or (text.isascii() and text.isdigit() and len(text) == phone_codes.CODE_DIGITS):
        return True
    plain = backup_codes.normalize(text)
    return len(plain) == _BACKUP_CODE_CHARS and all(ch.isalnum() or ch in "- " for ch in text) and text.isascii()


def password_candidates(typed: str) -> list[tuple[str, str]]:
    """The ``(password, code)`` readings of what was typed in the password field, in the order they are tried.

    ``password,code`` is split at the last comma only when what follows it looks like a code, or is a word that asks
    for one (``password,sms``, Duo's append mode); the whole field is
    then tried as the password too, so a password with a comma works alone (and the code comes by challenge), even
    one that ends in something code-like.
    """
    password, comma, code = typed.rpartition(",")
    if comma and (_looks_like_code(code) or _SEND_REPLY.fullmatch(code.strip())):
        return [(password, code), (typed, "")]
    return [(typed, "")]


def _check_password(username: str, typed: str, *, ip: str | None) -> tuple[User | None, str, float, str]:
    """The person whose password this is and the code typed with it, with the failure audit of the web sign-in;
    or None, with how long the refusal's reply should wait and what to tell the person when the directory answered
    something of its own (locked, expired, unreachable...; "" for a wrong password, which says nothing).

    Every reading goes through the site's one password check: a directory person's only by the directory (DIR-01).
    The first answer other than a wrong password ends the check: no other reading is tried. An unreachable directory
    is nobody's wrong password and counts toward nothing; the directory's refusals (locked, expired...) count as one.
    A directory person's password is bound once per attempt, with the first reading only: each bind that fails counts
    toward the directory's own lockout (Active Directory's, a password policy's), and one wrong password must not
    count twice there.

    The throttle counts failures per typed ID only (API-09): ``ip`` is the VPN concentrator's, shared by everyone
    behind it, so it is audited but counts toward nothing, and the web's failures from that address do not count
    here either. However many readings are tried, a failure counts once.
    An unknown ID costs no hash and no bind: its reply waits as long as a known person's check would take instead
    (the site's one rule, :func:`identity.directory.pace.unknown_pace`, counted in readings of the field), and the
    CPU stays with the people who exist.
    """
    candidates = password_candidates(typed)
    pace = unknown_pace(len(candidates))
    if password_sign_in_throttled(username, ip=ip, by_address=False):
        return None, "", pace, ""
    known = User.objects.filter(username=username).first()
    told = ""
    if known is not None:
        for password, code in candidates[:1] if known.from_directory else candidates:
            checked = check_password(username, password, ip=ip, entry_point="radius")
            if checked.user is not None:
                record_password_success(checked.user, ip=ip, entry_point="radius", code_follows=bool(code))
                return checked.user, code, 0.0, ""
            if checked.answer != Answer.WRONG_PASSWORD:
                told = checked.message
                if not checked.counts_as_failure:
                    return None, "", 0.0, told
                break
        pace = 0.0
    record_password_failure(username, username_known_user=known, ip=ip, entry_point="radius")
    return None, "", pace, told


def _radius_code(username: str, code: str, *, client: RadiusClient, ip: str | None) -> RadiusAnswer:
    """Check the code of an active ``username`` (:func:`.passcode.verify_passcode`)."""
    context = {"radius_client": client.name}
    verdict = passcode.verify_passcode(username, code, ip=ip, entry_point="radius", context=context)
    if verdict.outcome == passcode.REFUSED:
        # In "code_only" mode the VPN checked the password; in "password" mode this code came with a right one.
        if (answer := _unenrolled_answer(verdict.person_id, ip=ip, context=context)) is not None:
            return answer
        verdict.audit_refusal("vpn.radius_rejected", ip=ip, context=context)
        return RadiusAnswer("reject", RADIUS_DENIED)
    if verdict.outcome == SecondFactorOutcome.OK:
        return RadiusAnswer("accept", "Welcome.")
    return RadiusAnswer("reject", RADIUS_DENIED)


def _answer_challenge(state: bytes, code: str, *, username: str, client: RadiusClient, ip: str | None) -> RadiusAnswer:
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
    if challenge is None or not fits:
        audit.record(
            "vpn.radius_rejected", ip=ip, details={"radius_client": client.name, "reason": "state not valid here"}
        )
        return RadiusAnswer("reject", RADIUS_DENIED)
    if asked := _SEND_REPLY.fullmatch(code.strip()):
        factor, nth = asked.group(1).lower(), int(asked.group(2) or 1)
        return _send_and_challenge(challenge.user, factor=factor, nth=nth, client=client, ip=ip)
    return _radius_code(challenge.user.username, code, client=client, ip=ip)


def radius_prompt(factors: Factors) -> str:
    """The challenge's words: what this person can enter or ask for, from their devices that take a code (the
    general words when they have none). Built from the devices alone, never from whether the person may use the
    VPN, so a person without access hears what one with it would (API-04)."""
    kinds_held = {getattr(device, "factor_name", "") for device in factors.typed}
    enter = ["a code from your authenticator app"] if kinds.APP_FACTOR in kinds_held else []
    if kinds_held - {kinds.APP_FACTOR, kinds.PHONE_FACTOR}:
        enter.append("a backup code")
    ask = ["'sms' for a text"] if any(phone.can_text for phone in factors.phones) else []
    if factors.phones:
        ask.append("'phone' for a call")
    if enter and ask:
        return f"Enter {' or '.join(enter)}, or reply {' or '.join(ask)}."
    if ask:
        return f"Reply {' or '.join(ask)}, then enter the code you get."
    return f"Enter {' or '.join(enter)}." if enter else RADIUS_PROMPT


def _send_code(user: User | None, *, factor: str, nth: int, client: RadiusClient, ip: str | None) -> str:
    """Text or call a code for ``sms``/``phone`` (``nth`` phone that can take it) through the sign-in's own send (its
    limits and audit, ``signin.code_sent``), audit ``vpn.code_requested`` (``sent`` says whether one went), and
    return the words saying where the code went. Counts toward no lockout: no code was tried. Sent only to someone
    who may use the VPN; the words depend only on the person's phones (none for ``user`` None, nobody), so the
    answer is the same either way (API-04), as at the Auth API."""
    factors = vpn_factors(user) if user is not None else Factors(typed=[], phones=[])
    channel = _CHANNELS[factor]
    phones = [phone for phone in factors.phones if channel in phone.challenge_channels]
    phone = phones[nth - 1] if nth <= len(phones) else None
    sent = False
    if phone is not None and user is not None and may_use_vpn(user):
        try:
            send_signin_code(phone, channel=channel, ip=ip)
            sent = True
        except ValidationError:
            pass  # a send limit or a lock: audited by the send path, answered like any other
    details = {"radius_client": client.name, "factor": factor, "sent": sent}
    audit.record("vpn.code_requested", subject=user, ip=ip, details=details)
    if phone is None:
        how = "texts" if factor == "sms" else "calls"
        return f"No phone of yours takes {how} here. {radius_prompt(factors)}"
    if factor == "sms":
        return f"We are texting a code to {phone.masked_number}. Enter it here."
    return f"We are calling {phone.masked_number} to read you a code. Enter it here."


def _send_and_challenge(user: User, *, factor: str, nth: int, client: RadiusClient, ip: str | None) -> RadiusAnswer:
    """The person answered a challenge with ``sms`` or ``phone``, or typed ``password,sms``: send the code
    (:func:`_send_code`) and challenge again with a new State, saying where the code went."""
    message = _send_code(user, factor=factor, nth=nth, client=client, ip=ip)
    state = secrets.token_bytes(32)
    _store_challenge(state, user=user, client=client, only_with_a_device=False)
    audit.record("vpn.radius_challenged", subject=user, ip=ip, details={"radius_client": client.name})
    return RadiusAnswer("challenge", message, state)


def _send_and_reject(username: str, *, factor: str, nth: int, client: RadiusClient, ip: str | None) -> RadiusAnswer:
    """``sms`` or ``phone`` typed as the code in ``code_only`` mode: send the code (:func:`_send_code`) and reject,
    saying where it went, as Duo's Auth Proxy does when it cannot challenge; the person signs in again with the code.
    Not a wrong code (OTP-01). No State: the password was checked by the VPN, not here, and a challenge would only
    ask for what the next attempt carries. An unknown or inactive ID hears what a person without phones hears."""
    user = User.objects.filter(username=username, is_active=True).first()
    context = {"radius_client": client.name}
    # Whatever the field holds, a person with access who has not enrolled hears their campaign, as with a code.
    if user is not None and may_use_vpn(user) and not has_enrolled(user):
        answer = _campaign_answer(user, ip=ip, context=context)
        if answer is not None:
            return answer
    message = _send_code(user, factor=factor, nth=nth, client=client, ip=ip)
    details = {**context, "reason": "a code was asked for"}
    audit.record("vpn.radius_rejected", subject=user, ip=ip, details=details)
    return RadiusAnswer("reject", message)


def radius_authenticate(
    client: RadiusClient, *, username: str | bytes, password: str | None, state: bytes | None, ip: str | None
) -> RadiusAnswer:
    """Answer one Access-Request whose Message-Authenticator the server has checked (API-08).

    ``username`` as pyrad decodes the User-Name: bytes when it is not UTF-8. Such a name, or one holding a NUL
    (which PostgreSQL cannot take), is nobody's: Access-Reject before anything is read, audited as
    ``vpn.radius_rejected`` without the name (people type passwords into it), counted toward no one.
    ``password`` is None when the User-Password is malformed (its length not a multiple of 16 octets): the same
    Access-Reject, audited, counted toward no one.

    With ``RADIUS_PASSWORD_MODE = "password"``: ``password,code`` checks both at once (:func:`password_candidates`
    says how a comma is read); the password alone,
    when right, answers a challenge whose State (random, single-use, bound to person and client, expiring after
    ``RADIUS_CHALLENGE_TTL_SECONDS``, API-05) comes back with the code, or with ``sms``/``phone`` to have one sent
    (:func:`_send_and_challenge`, then a new challenge). With ``"code_only"`` the VPN has checked
    the password itself and the field holds the code. VPN approval and a second factor are required, through the
    lockout shared with the web (OTP-01), but for a person with approved access and no device at all whose
    campaigns allow the password alone for now (accepted, told the date; audited with the campaign) or require
    enrollment (rejected, told where to go). Every outcome is audited; the answers to an unknown person,
    one without access or device, a locked one and a wrong code are the same (API-04).
    """
    if not isinstance(username, str) or "\x00" in username:
        details = {"radius_client": client.name, "reason": "the user name is not text"}
        audit.record("vpn.radius_rejected", ip=ip, details=details)
        return RadiusAnswer("reject", RADIUS_DENIED)
    if password is None:
        details = {"radius_client": client.name, "reason": "the password is malformed"}
        audit.record("vpn.radius_rejected", ip=ip, details=details)
        return RadiusAnswer("reject", RADIUS_DENIED)
    if state:
        return _answer_challenge(state, password, username=username, client=client, ip=ip)
    if not password:
        # No User-Password: an EAP conversation (strongSwan's IKEv2), which this server does not speak. Counted
        # toward no one: a misconfigured VPN must not throttle the people behind it.
        audit.record("vpn.radius_rejected", ip=ip, details={"radius_client": client.name, "reason": "no password"})
        return RadiusAnswer("reject", RADIUS_DENIED)
    if settings.RADIUS_PASSWORD_MODE == "code_only":
        if asked := _SEND_REPLY.fullmatch(password.strip()):
            factor, nth = asked.group(1).lower(), int(asked.group(2) or 1)
            return _send_and_reject(username, factor=factor, nth=nth, client=client, ip=ip)
        return _radius_code(username, password, client=client, ip=ip)
    user, code, pace, told = _check_password(username, password, ip=ip)
    if user is None:
        return RadiusAnswer("reject", told or RADIUS_DENIED, not_before=pace)
    # "password,sms" (Duo's append mode): the right password, then a code sent and asked for, as when the
    # challenge is answered with "sms"; never a wrong code.
    asked = _SEND_REPLY.fullmatch(code.strip()) if code else None
    if code and asked is None:
        return _radius_code(user.username, code, client=client, ip=ip)
    state = secrets.token_bytes(32)
    # Someone with approved access is challenged only if they have a device (the same one statement either way);
    # one without any is answered by their campaigns, if any applies. Everyone else is challenged.
    with transaction.atomic():
        stored = _store_challenge(state, user=user, client=client, only_with_a_device=may_use_vpn(user))
        if stored and asked is None:
            audit.record("vpn.radius_challenged", subject=user, ip=ip, details={"radius_client": client.name})
            return RadiusAnswer("challenge", radius_prompt(vpn_factors(user)), state)
    if not stored:
        answer = _campaign_answer(user, ip=ip, context={"radius_client": client.name})
        if answer is not None:
            return answer
        with transaction.atomic():
            _store_challenge(state, user=user, client=client, only_with_a_device=False)
            if asked is None:
                audit.record("vpn.radius_challenged", subject=user, ip=ip, details={"radius_client": client.name})
                return RadiusAnswer("challenge", radius_prompt(vpn_factors(user)), state)
    assert asked is not None
    factor, nth = asked.group(1).lower(), int(asked.group(2) or 1)
    message = _send_code(user, factor=factor, nth=nth, client=client, ip=ip)
    audit.record("vpn.radius_challenged", subject=user, ip=ip, details={"radius_client": client.name})
    return RadiusAnswer("challenge", message, state)


_STORE_IF_ANY_DEVICE: list[str] = []


def _store_if_any_device_sql() -> str:
    # "Has a confirmed device of any kind": django-otp's ``user_has_device(user, confirmed=True)`` in one statement,
    # not the enrolled rule (``devices_working_registration``), which leaves backup and bypass codes out: a person
    # holding only those is asked for one, never let in with the password alone. Built on first use (the device
    # models' registry is ready by then); the same text every time, so it stays prepared. Every django-otp device
    # model counts, those a VPN cannot use too: a person with only a security key has enrolled, and no campaign's
    # policy for people who have not applies to them. A set with a lifetime (bypass codes) counts only while it
    # lasts, as its manager's ``devices_for_user`` offers it. campaigns/tests/test_enrolled_rule.py holds this
    # statement to ``user_has_device`` for a person in every state of every device kind. The time is a parameter,
    # not the database's now(), so the embedded SQLite runs it too.
    if not _STORE_IF_ANY_DEVICE:
        table = RadiusChallenge._meta.db_table
        devices = " OR ".join(
            f"EXISTS (SELECT 1 FROM {model._meta.db_table} WHERE user_id = %(person)s AND confirmed"  # noqa: S608
            + (" AND valid_until > %(now)s)" if any(f.name == "valid_until" for f in model._meta.fields) else ")")
            for model in device_classes()
        )
        _STORE_IF_ANY_DEVICE.append(
            f"INSERT INTO {table} (state_hash, user_id, client_id, expires_at) "  # noqa: S608 (our tables)
            f"SELECT %(state_hash)s, %(person)s, %(client)s, %(expires_at)s WHERE {devices or 'false'} RETURNING id"
        )
    return _STORE_IF_ANY_DEVICE[0]


def _store_challenge(state: bytes, *, user: User, client: RadiusClient, only_with_a_device: bool) -> bool:
    """Store the State of a challenge to ``user`` through ``client``; with ``only_with_a_device``, only if the
    person has a confirmed device of any kind (one statement, as the plain insert is). True when stored."""
    ttl = min(settings.RADIUS_CHALLENGE_TTL_SECONDS, 120)
    row = {"state_hash": _state_hash(state), "expires_at": timezone.now() + timedelta(seconds=ttl)}
    if not only_with_a_device:
        RadiusChallenge.objects.create(user=user, client=client, **row)
        return True
    params = {**row, "person": user.pk, "client": client.pk, "now": timezone.now()}
    return sql.execute(_store_if_any_device_sql(), params, fetch="one") is not None


def _campaign_answer(user: User, *, ip: str | None, context: dict) -> RadiusAnswer | None:
    """For a person with approved access and no device at all (the caller knows): what their campaigns say, or
    None when none applies. The password alone let in (:func:`campaigns.services.password_alone_allowed`):
    Access-Accept whose Reply-Message gives the date and the address, audited as ``vpn.password_alone_allowed``
    with the campaign. The last device reported lost (BND-02): Access-Reject whose Reply-Message sends them to the
    help desk, whatever the campaigns say. Enrollment required: Access-Reject whose Reply-Message says where to go.
    Both refusals are audited as ``vpn.radius_rejected``, the second with the campaign."""
    policy = effective_policy(user)
    if policy is not None and password_alone_allowed(user, policy):
        audit_password_alone(user, policy, door="radius", ip=ip, context=context)
        return RadiusAnswer("accept", texts.allowed_for_now(policy))
    if user.setup_on_hold:
        details = {**context, "reason": "last device reported lost"}
        audit.record("vpn.radius_rejected", subject=user, ip=ip, details=details)
        return RadiusAnswer("reject", texts.held_at_the_vpn())
    if policy is None:
        return None
    details = {**context, "reason": "not enrolled, and a campaign requires it", "campaign": policy.campaign_id}
    audit.record("vpn.radius_rejected", subject=user, ip=ip, details=details)
    return RadiusAnswer("reject", texts.enroll_first(policy))


def _unenrolled_answer(person_id: int | None, *, ip: str | None, context: dict) -> RadiusAnswer | None:
    """After a code was refused as from someone who may not use the VPN or has no device that takes a code: for a
    person with approved access and no device at all, what their campaigns say (:func:`_campaign_answer`); for one
    whose devices all work on the web only (a passkey, a security key), Access-Reject whose Reply-Message says so
    in the Auth API's words (``web_only_message``), audited as ``vpn.radius_rejected``; else None. Read only on
    that refusal, never for an enrolled person's code."""
    user = User.objects.filter(pk=person_id, is_active=True).first() if person_id else None
    if not may_use_vpn(user):
        return None
    if not has_enrolled(user):
        return _campaign_answer(user, ip=ip, context=context)
    message = web_only_message(user)
    if not message:
        return None
    audit.record("vpn.radius_rejected", subject=user, ip=ip, details={**context, "reason": "web-only devices"})
    return RadiusAnswer("reject", message)


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
