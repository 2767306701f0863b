"""What identity needs from a second-factor device, written down once.

The devices app provides the devices (django-otp ``Device`` subclasses); identity only signs people in with them
and never imports that app. These protocols say what sign-in, the step-up and the lockout use.
"""

from typing import Protocol, runtime_checkable


@runtime_checkable
class SecondFactor(Protocol):
    """A device a person signs in with: an app, a phone, a set of codes, a security key."""

    persistent_id: str  # django-otp's "app_label.model/pk", kept in the session once verified
    name: str
    confirmed: bool
    user_id: int
    # The factor's name in audit events, reports and the VPN gate ("authenticator_app", "phone", ...).
    factor_name: str
    # False for a device answered by touching it (a security key), not by a typed code.
    accepts_typed_code: bool
    # True for a WebAuthn credential (security key or passkey), bound to our origin; False for every typed code. The
    # device model says it (``devices.models.SecurityKeyDevice``); the staff admin requires it (WA-05).
    phishing_resistant: bool

    def verify_is_allowed(self) -> tuple[bool, dict | None]:
        """django-otp's back-off: whether a code may be checked now."""

    def verify_token(self, token) -> bool:
        """Check and consume ``token`` under the device's row lock; count a failure when it is wrong."""


@runtime_checkable
class ChallengeFactor(SecondFactor, Protocol):
    """A device that delivers a code when asked (texts, calls)."""

    challenge_channels: tuple[str, ...]
    masked_number: str

    def generate_challenge(self, channel: str = ..., ip: str | None = ...) -> str:
        """Send a fresh code by ``channel``; raises ``ValidationError`` when a send limit refuses it."""
