"""State changes of security keys and passkeys: binding one (by the person, or for them by someone else), signing
in with one as a second factor, and signing in with a passkey alone (passwordless).

Passkeys are :class:`SecurityKeyDevice` rows of the form ``passkey``: the same WebAuthn credential on the person's
own phone or computer, registered discoverable and with the person verified (WA-01).

The rules of :mod:`devices.services` hold here too: one function is one whole
state change with its audit event, callers pass plain values (``actor``,
``ip``, the session key), and refusals raise ``ValidationError`` with a text
from :mod:`devices.errors`. The WebAuthn checks themselves are in
:mod:`devices.webauthn`.
"""

import functools
import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from identity import audit, lifetimes, sql, staff_factor
from identity import errors as identity_errors
from identity import services as identity_services
from identity.models import AuditEvent, User
from identity.networks import client_network

from .. import errors, verification, webauthn
from ..models import Registration, SecurityKeyDevice, WebAuthnChallenge, WebAuthnUserHandle
from ..webauthn import CeremonyRefused, SessionChallenge
from .common import (
    lock_registration,
    require_pending,
    require_recent_verification,
    require_setup_open,
    security_key_device_name,
)
from .notices import notify_person

WEBAUTHN_KINDS = (Registration.Kind.SECURITY_KEY, Registration.Kind.PASSKEY)


class PasswordlessOutcome:
    """What a passwordless attempt came to, beside identity's second-factor outcomes (OK, WRONG, ...)."""

    # No credential in use by that id (unknown, retired, not a passkey): answered as a wrong one (WA-03).
    UNKNOWN = "unknown"


# An answer to a challenge that is missing, of another session, already answered or expired (a page left open,
# a double click): nothing was checked, so nothing counts toward the lockout (OTP-01) and the person is asked to
# try again; the key's back-off counts it, as a wrong answer (see _claim_open_challenge).
CHALLENGE_NOT_OPEN = "challenge_not_open"
CHALLENGE_REASONS = frozenset({"no_challenge", "other_session", "challenge_used", "challenge_expired"})


def _claim_open_challenge(
    challenge: SessionChallenge, *, device: SecurityKeyDevice, user: User | None, ceremony: str, ip: str | None
) -> WebAuthnChallenge | str:
    """Spend the challenge ``challenge`` names (issued to ``user``, None for a passwordless one) and return its row.

    When it may not be answered (see :func:`devices.webauthn.claim_challenge`), return an outcome instead; nothing
    is checked and nothing counts toward the owner's lockout (a double click, a page left open), but the answer
    counts in the back-off of ``device`` (the key it names, or the one it is checked against) as a wrong answer
    does: :data:`CHALLENGE_NOT_OPEN`, audited as ``signin.key_challenge_not_open``; while the back-off holds the
    key, ``SecondFactorOutcome.THROTTLED``, not audited, so answers to closed challenges, which anyone who knows
    a passkey's credential id may send without end, cannot fill the audit log. The owner's row is locked first,
    then the key's, in the order ``verify_second_factor`` takes its locks, so two answers at once wait in turn
    instead of deadlocking."""
    with transaction.atomic():
        owner = User.objects.select_for_update().get(pk=device.user_id)
        try:
            return webauthn.claim_challenge(challenge, user=user, ceremony=ceremony)
        except CeremonyRefused as refused:
            reason = refused.reason
        key = SecurityKeyDevice.objects.select_for_update().get(pk=device.pk)
        allowed, _ = key.verify_is_allowed()
        if not allowed:
            return identity_services.SecondFactorOutcome.THROTTLED
        key.throttle_increment(commit=False)
        sql.save_fields(key, verification.THROTTLE_FIELDS)
        audit.record("signin.key_challenge_not_open", subject=owner, ip=ip, details={"reason": reason})
        return CHALLENGE_NOT_OPEN


@dataclass(frozen=True)
class AssertionToken:
    """What :meth:`SecurityKeyDevice.verify_token` takes instead of a typed code.

    The browser's assertion, and the challenge it answers (the id kept in the
    session and that session's key).
    """

    challenge: SessionChallenge
    response_json: str
    ip: str | None = None
    # A passkey alone signs in: the challenge names nobody, the person must be verified, the handle must match.
    passwordless: bool = False
    # The challenge's row, already spent by :func:`_claim_open_challenge`.
    claimed: WebAuthnChallenge | None = None

    def check_against(self, device: SecurityKeyDevice) -> bool:
        return _check_assertion(self, device)


def _clean_label(label: str) -> str:
    label = (label or "").strip()
    if not 1 <= len(label) <= 64:
        raise ValidationError(errors.KEY_LABEL_INVALID, code="label")
    return label


def keys_in_use(user: User) -> QuerySet[SecurityKeyDevice]:
    """The person's WebAuthn credentials in use, security keys and passkeys alike."""
    keys: QuerySet[SecurityKeyDevice] = SecurityKeyDevice.objects.filter(user=user, confirmed=True).order_by("pk")
    return keys


def start_security_key_registration(
    user: User, *, session_key: str, registration: Registration | None = None, passkey: bool = False
) -> tuple[str, WebAuthnChallenge]:
    """Issue a registration challenge and return the JSON options for ``navigator.credentials.create()``.

    ``registration`` is the person's pending security-key or passkey registration in the
    wizard; for a key registered for the person by someone else there is none and ``session_key`` is that
    actor's session (``passkey`` then says which). ``excludeCredentials`` lists the person's keys in use.
    A passkey is asked for as a discoverable credential with user verification (WA-01).
    Raises ``ValidationError`` when the registration is not a pending security key or passkey.
    """
    with transaction.atomic():
        if registration is not None:
            registration = lock_registration(registration)
            if registration.user_id != user.pk or registration.kind not in WEBAUTHN_KINDS:
                raise ValidationError(errors.NOT_PENDING, code="not_pending")
            require_pending(registration)
            passkey = registration.kind == Registration.Kind.PASSKEY
        challenge = webauthn.issue_challenge(
            user, ceremony=WebAuthnChallenge.Ceremony.REGISTER, session_key=session_key, registration=registration
        )
        options = webauthn.registration_options(user, challenge, exclude=keys_in_use(user), passkey=passkey)
    return options, challenge


_CHALLENGE_INVALID = {"message": errors.KEY_CHALLENGE_INVALID, "code": "challenge"}


def register_security_key(
    user: User,
    *,
    response_json: str,
    challenge: SessionChallenge,
    label: str,
    actor: User,
    ip: str | None = None,
    registration: Registration | None = None,
    verified_at: datetime | None = None,
    passkey: bool = False,
    session_device: Any = None,
) -> Registration:
    """Bind the key (or passkey) that answered ``challenge`` to ``user`` and return its active registration.

    A passkey (a pending registration of that kind, or ``passkey`` without one) must be discoverable and have
    verified the person (WA-01); what the authenticator says of backing up is recorded on the device (WA-04).

    The challenge must be an open registration challenge of this person, issued
    to this session (and for ``registration`` when given); it is spent whatever
    the outcome. The response is checked against the pinned RP ID and origins.
    A credential id registered before, to anyone, is refused. A pending
    wizard registration becomes active; without one a new registration is
    written. When ``actor`` is not the person, the device and the audit event
    record who registered it for whom (``registered_by``).
    Audits ``device.bound``, or ``enrollment.security_key_rejected`` with the reason.
    A person binding their own key needs a recent second factor (BND-01, ``verified_at``); for anyone else the
    caller must have checked the person's identity and the actor's right to do it instead. A staff account that
    holds a phishing-resistant device already binds another only from a session verified with one of those
    (``session_device``, the device that verified the session, WA-05): a typed code would otherwise buy a key the
    staff admin accepts.
    """
    if actor == user:
        require_recent_verification(user, verified_at)
        require_setup_open(user, registration=registration)
        if not staff_factor.may_add_key(user, session_device=session_device):
            with transaction.atomic():
                refusal = _refused(
                    user,
                    actor=actor,
                    ip=ip,
                    reason="staff_key_needed",
                    registration=registration,
                    message=errors.KEY_STAFF_NEEDS_KEY,
                    code="staff_key_needed",
                )
            raise refusal
    label = _clean_label(label)
    failure: ValidationError | None = None
    with transaction.atomic():
        try:
            row = webauthn.claim_challenge(challenge, user=user, ceremony=WebAuthnChallenge.Ceremony.REGISTER)
        except CeremonyRefused as refused:
            failure = _refused(
                user, actor=actor, ip=ip, reason=refused.reason, registration=registration, **_CHALLENGE_INVALID
            )
        else:
            if registration is not None and row.registration_id != registration.pk:
                failure = _refused(
                    user,
                    actor=actor,
                    ip=ip,
                    reason="other_registration",
                    registration=registration,
                    **_CHALLENGE_INVALID,
                )
            else:
                try:
                    registration = _bind(
                        user, row, response_json=response_json, label=label, actor=actor, ip=ip, passkey=passkey
                    )
                except ValidationError as error:
                    failure = error
    if failure:
        raise failure
    assert registration is not None  # _bind returned it: nothing failed
    return registration


def _refused(
    user: User,
    *,
    actor: User,
    ip: str | None,
    reason: str,
    registration: Registration | None,
    message: str,
    code: str,
    detail: str = "",
) -> audit.AuditedRefusal:
    """Audit ``enrollment.security_key_rejected`` with ``reason``; return the refusal to raise, which tells a caller
    with a transaction of its own (the desk's runner) to keep that event and the spent challenge."""
    details: dict[str, Any] = {"reason": reason, "registration": registration.pk if registration else None}
    if detail:
        details["detail"] = detail
    audit.record("enrollment.security_key_rejected", actor=actor, subject=user, ip=ip, details=details)
    return audit.AuditedRefusal(message, code=code)


def _bind(
    user: User, row: WebAuthnChallenge, *, response_json: str, label: str, actor: User, ip: str | None, passkey: bool
) -> Registration:
    """Verify the response to the claimed ``row`` and write the device and the active registration."""
    pending = lock_registration(row.registration) if row.registration is not None else None
    refused = functools.partial(_refused, user, actor=actor, ip=ip, registration=pending)
    if pending is not None:
        try:
            require_pending(pending)
        except ValidationError as error:
            raise refused(reason="not_pending", message=str(error.message), code=error.code or "not_pending") from error
        passkey = pending.kind == Registration.Kind.PASSKEY
    failed = errors.PASSKEY_REGISTRATION_FAILED if passkey else errors.KEY_REGISTRATION_FAILED
    try:
        new = webauthn.verify_registration(response_json, challenge=row, require_user_verification=passkey)
    except CeremonyRefused as ceremony:
        raise refused(reason=ceremony.reason, message=failed, code="invalid", detail=ceremony.detail) from ceremony
    # WA-01: the browser was told to make it discoverable; one that says it did not is refused. A browser that
    # says nothing (no credProps) made it as told or failed the ceremony.
    if passkey and new.discoverable is False:
        raise refused(reason="not_discoverable", message=failed, code="not_discoverable")
    for_someone_else = getattr(actor, "pk", None) not in (None, user.pk)
    device = None
    if not SecurityKeyDevice.objects.filter(credential_id=new.credential_id).exists():
        try:
            with transaction.atomic():  # a savepoint: of two binds of one credential, the loser lands here
                device = SecurityKeyDevice.objects.create(
                    user=user,
                    name=security_key_device_name(label),
                    confirmed=True,
                    credential_id=new.credential_id,
                    public_key=new.public_key,
                    sign_count=new.sign_count,
                    transports=new.transports,
                    aaguid=new.aaguid,
                    registered_by=actor if for_someone_else else None,
                    form=SecurityKeyDevice.Form.PASSKEY if passkey else SecurityKeyDevice.Form.SECURITY_KEY,
                    discoverable=passkey or bool(new.discoverable),
                    user_verified=new.user_verified,
                    backup_eligible=new.backup_eligible,
                    backed_up=new.backed_up,
                )
        except IntegrityError:
            device = None
    if device is None:
        message = errors.PASSKEY_ALREADY_REGISTERED if passkey else errors.KEY_ALREADY_REGISTERED
        raise refused(reason="credential_registered", message=message, code="duplicate")
    now = timezone.now()
    kind = Registration.Kind.PASSKEY if passkey else Registration.Kind.SECURITY_KEY
    registration = pending or Registration(user=user, kind=kind)
    registration.label = label
    registration.security_key_device = device
    registration.status = Registration.Status.ACTIVE
    registration.activated_at = now
    registration.expires_at = None
    registration.save()
    details = {"registration": registration.pk, "kind": registration.kind, "factor": device.factor_name}
    if passkey:
        details["backed_up"] = device.backed_up  # WA-04: synced or bound to this one device
    if for_someone_else:
        details |= {"registered_by": actor.get_username(), "registered_for": user.get_username()}
    audit.record("device.bound", actor=actor, subject=user, ip=ip, details=details)
    notify_person(user, event="device.bound", device_name=registration.display_name)
    return registration


def start_security_key_sign_in(user: User, *, session_key: str) -> tuple[str, WebAuthnChallenge]:
    """Issue a sign-in challenge and return the JSON options for ``navigator.credentials.get()``.

    ``allowCredentials`` lists the person's keys in use. Call only for the
    person who passed the password step in this session (or who is signed in,
    for a step-up). Raises ``ValidationError`` when the person has no key.
    """
    with transaction.atomic():
        keys = list(keys_in_use(user))
        if not keys:
            raise ValidationError(errors.KEY_NONE, code="no_key")
        challenge = webauthn.issue_challenge(
            user, ceremony=WebAuthnChallenge.Ceremony.AUTHENTICATE, session_key=session_key
        )
        options = webauthn.authentication_options(challenge, devices=keys)
    return options, challenge


def verify_security_key(
    user: User, *, response_json: str, challenge: SessionChallenge, ip: str | None, entry_point: str = "web"
) -> tuple[str, SecurityKeyDevice]:
    """Check an assertion through identity's ``verify_second_factor``; return ``(outcome, device)``.

    So the lockout over all factors (OTP-01), django-otp's back-off and the
    sign-in audit events apply to keys as to codes. The assertion is checked
    against the key it names when that is one of the person's keys in use;
    otherwise (another person's key, a removed one, garbage) against one of
    theirs, where it fails: the challenge is spent and the failure counts. An answer to a challenge that is not
    open (missing, another session's, used, expired) is checked against nothing and counts nothing toward the
    lockout: it answers :data:`CHALLENGE_NOT_OPEN`, or ``THROTTLED`` while the key's back-off holds it (see
    :func:`_claim_open_challenge`). Raises ``ValidationError`` when the person has no key in use.
    """
    keys = keys_in_use(user)
    credential_id = webauthn.credential_id_of(response_json)
    device = keys.filter(credential_id=credential_id).first() if credential_id else None
    device = device or keys.first()
    if device is None:
        raise ValidationError(errors.KEY_NONE, code="no_key")
    # One transaction from the claim to the outcome, on the owner's locked row: a second answer to the same
    # challenge (a double click) waits for this one's outcome, not backing the key off under it.
    with transaction.atomic():
        claimed = _claim_open_challenge(
            challenge, device=device, user=user, ceremony=WebAuthnChallenge.Ceremony.AUTHENTICATE, ip=ip
        )
        if isinstance(claimed, str):
            return claimed, device
        outcome = identity_services.verify_second_factor(
            user,
            device=device,
            code=AssertionToken(challenge=challenge, response_json=response_json, ip=ip, claimed=claimed),
            ip=ip,
            entry_point=entry_point,
        )
    return outcome, device


def passwordless_refusal(*, ip: str | None, session_key: str | None = None) -> None:
    """Raise ``ValidationError`` (code ``throttled``) when, within one ``WEBAUTHN_CHALLENGE_TTL``, the session of
    ``session_key`` has been given ``PASSWORDLESS_CHALLENGES_PER_SESSION`` passwordless challenges, or the network
    of ``ip`` (the address itself for IPv4, its /64 for IPv6: :func:`identity.networks.client_network`)
    ``PASSWORDLESS_CHALLENGES_PER_ADDRESS``.

    Anyone may ask for one, and the sign-in page's autofill asks on every load. A session is given its open
    challenge again (:func:`start_passwordless_sign_in`), so a person's reloads and answers count in their own
    session, against a small limit; the network's ceiling is much larger, so everyone loading the page behind one
    NAT address at 9 am is not refused, and it still bounds the rows a flood of newcomers from one address writes.
    The counts are of challenge rows in the database (REL-07). The first refusal of a network in a window is
    audited as ``signin.passwordless_throttled``; the ones after it are not, or the flood would fill the audit log
    instead.
    """
    if not ip:
        return
    network = client_network(ip)
    since = timezone.now() - settings.WEBAUTHN_CHALLENGE_TTL
    recent = WebAuthnChallenge.objects.filter(created_at__gte=since)
    by_network = recent.filter(client_address=str(network.network_address))
    mine = (
        recent.filter(
            user=None,
            ceremony=WebAuthnChallenge.Ceremony.PASSWORDLESS,
            session_binding=webauthn.session_binding(session_key),
        )
        if session_key
        else None
    )
    if by_network.count() < settings.PASSWORDLESS_CHALLENGES_PER_ADDRESS and (
        mine is None or mine.count() < settings.PASSWORDLESS_CHALLENGES_PER_SESSION
    ):
        return
    throttled = AuditEvent.objects.filter(action="signin.passwordless_throttled", created_at__gte=since)
    if not throttled.filter(details__network=str(network)).exists():
        audit.record("signin.passwordless_throttled", ip=ip, details={"network": str(network)})
    wait = lifetimes.in_words(settings.WEBAUTHN_CHALLENGE_TTL)
    raise ValidationError(identity_errors.SIGN_IN_THROTTLED.format(wait=wait), code="throttled")


def start_passwordless_sign_in(*, session_key: str, ip: str | None) -> tuple[str, WebAuthnChallenge]:
    """Return the JSON options for a passwordless ``navigator.credentials.get()`` and the challenge they carry.

    No ``allowCredentials``: the browser offers the passkeys it holds for this site; user verification is
    required (WA-02). The session's open challenge is given again while at least half its life is left (the
    page's autofill and its button then answer the same one); otherwise a new one is issued, for which
    :func:`passwordless_refusal` may raise ``ValidationError``. Nobody is known yet, so nothing else is audited
    until an answer comes.
    """
    now = timezone.now()
    with transaction.atomic():
        challenge = (
            WebAuthnChallenge.objects.filter(
                user=None,
                ceremony=WebAuthnChallenge.Ceremony.PASSWORDLESS,
                session_binding=webauthn.session_binding(session_key),
                consumed_at=None,
                expires_at__gte=now + settings.WEBAUTHN_CHALLENGE_TTL / 2,
            )
            .order_by("-pk")
            .first()
        )
        if challenge is None:
            passwordless_refusal(ip=ip, session_key=session_key)
            # The row keeps the network's first address, so the count above is one indexed equality.
            network = str(client_network(ip).network_address) if ip else None
            challenge = webauthn.issue_challenge(
                None, ceremony=WebAuthnChallenge.Ceremony.PASSWORDLESS, session_key=session_key, client_address=network
            )
        options = webauthn.authentication_options(challenge, devices=[], passwordless=True)
    return options, challenge


def sign_in_with_passkey(
    *, response_json: str, challenge: SessionChallenge, ip: str | None
) -> tuple[str, SecurityKeyDevice | None]:
    """Check a passwordless assertion; return ``(outcome, device)``; on OK the caller signs its owner in fully.

    The credential it names must be a passkey in use of an active person, registered discoverable with the
    person verified; the assertion must carry the UV flag (WA-02) and that person's user handle (WA-03). It then
    goes through identity's ``verify_second_factor`` as every factor does (lockout, back-off, counter, audit),
    the audit saying so (``method: passwordless``). A credential not in use (unknown, retired, another form) spends the
    challenge, is audited as ``signin.passwordless_refused`` and answers :attr:`PasswordlessOutcome.UNKNOWN` (with
    no challenge open to spend: :data:`CHALLENGE_NOT_OPEN`, not audited),
    which the caller must word as it words a wrong one; an answer to a challenge that is not open counts nothing
    toward the lockout and answers :data:`CHALLENGE_NOT_OPEN`, also while the passkey's back-off holds it (then
    unaudited, see :func:`_claim_open_challenge`), as for a credential id that is no passkey. The password is never touched.
    """
    credential_id = webauthn.credential_id_of(response_json)
    device = None
    if credential_id:
        device = (
            SecurityKeyDevice.objects.select_related("user")
            .filter(
                credential_id=credential_id,
                confirmed=True,
                form=SecurityKeyDevice.Form.PASSKEY,
                discoverable=True,
                user__is_active=True,
            )
            .first()
        )
    if device is None:
        with transaction.atomic():
            registered = bool(credential_id) and SecurityKeyDevice.objects.filter(credential_id=credential_id).exists()
            # Spent either way: one challenge, one answer. An answer to a challenge already spent or expired is
            # not audited: the same stale answer sent in a loop would otherwise write a row each time, where a
            # new challenge costs a request that passwordless_refusal throttles. It answers as a passkey's does.
            try:
                webauthn.claim_challenge(challenge, user=None, ceremony=WebAuthnChallenge.Ceremony.PASSWORDLESS)
            except CeremonyRefused:
                return CHALLENGE_NOT_OPEN, None
            audit.record(
                "signin.passwordless_refused",
                ip=ip,
                details={"reason": "not_in_use" if registered else "unknown_credential"},
            )
        return PasswordlessOutcome.UNKNOWN, None
    with transaction.atomic():  # from the claim to the outcome, as in verify_security_key
        claimed = _claim_open_challenge(
            challenge, device=device, user=None, ceremony=WebAuthnChallenge.Ceremony.PASSWORDLESS, ip=ip
        )
        if isinstance(claimed, str):
            # Answered as an unknown credential's answer to a closed challenge is, back-off or not: with no password
            # asked, "throttled" would tell anyone which credential ids are passkeys here (WA-03).
            return CHALLENGE_NOT_OPEN, device
        outcome = identity_services.verify_second_factor(
            device.user,
            device=device,
            code=AssertionToken(
                challenge=challenge, response_json=response_json, ip=ip, passwordless=True, claimed=claimed
            ),
            ip=ip,
            context={"method": "passwordless"},
        )
    return outcome, device


def _handle_matches(token: "AssertionToken", device: SecurityKeyDevice) -> bool:
    """Whether the assertion names the device owner's user handle (a passkey always carries it)."""
    named = webauthn.user_handle_of(token.response_json)
    stored = WebAuthnUserHandle.objects.filter(user_id=device.user_id).values_list("handle", flat=True).first()
    return bool(named and stored is not None and hmac.compare_digest(bytes(named), bytes(stored)))


def _check_assertion(token: "AssertionToken", device: SecurityKeyDevice) -> bool:
    """Spend the challenge, check the assertion and the counter, against the locked row of ``device``.

    Runs under :func:`devices.verification.verify` in the caller's transaction (``verify_second_factor`` holds the
    person's row), so the spent challenge, the back-off, the new counter and any audit event commit with the
    outcome. A counter that did not go up (unless both are 0: keys without a counter) means a cloned key:
    refused and audited as ``security_key.counter_regressed``. An assertion by a key that is not this device's
    is audited as ``security_key.credential_refused``.
    """
    if token.passwordless:
        owner, ceremony = None, WebAuthnChallenge.Ceremony.PASSWORDLESS
    else:
        owner, ceremony = device.user, WebAuthnChallenge.Ceremony.AUTHENTICATE
    try:
        row = token.claimed or webauthn.claim_challenge(token.challenge, user=owner, ceremony=ceremony)
        signed_count = webauthn.verify_assertion_response(
            token.response_json, challenge=row, device=device, require_user_verification=token.passwordless
        )
        if token.passwordless and not _handle_matches(token, device):
            raise CeremonyRefused("other_user_handle")
    except CeremonyRefused as refused:
        if refused.reason == "other_credential":
            named = webauthn.credential_id_of(token.response_json)
            audit.record(
                "security_key.credential_refused",
                subject=device.user,
                ip=token.ip,
                details={
                    "device": device.persistent_id,
                    "registered_here": bool(named) and SecurityKeyDevice.objects.filter(credential_id=named).exists(),
                },
            )
        return False
    stored = device.sign_count
    if (signed_count or stored) and signed_count <= stored:
        audit.record(
            "security_key.counter_regressed",
            subject=device.user,
            ip=token.ip,
            details={
                "device": device.persistent_id,
                "registration": Registration.objects.filter(security_key_device=device)
                .values_list("pk", flat=True)
                .first(),
                "stored_count": stored,
                "signed_count": signed_count,
            },
        )
        # A counter going backwards can mean a cloned key: the person hears of it on another channel (BND-03).
        notify_person(device.user, event="security_key.counter_regressed", device_name=device.name)
        return False
    device.sign_count = signed_count
    return True
