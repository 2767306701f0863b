"""The devices app's data, one module per concern; every model is importable from ``devices.models``.

- :mod:`.registrations`: what a person registered (``Registration``), and ``mask_phone_number``.
- :mod:`.factors`: the django-otp devices of the factors (app, phone, security key) and the phone codes sent.
- :mod:`.codes`: backup codes and help-desk bypass codes, as django-otp devices.
- :mod:`.tokens`: WebAuthn challenges and emailed activation links.
- :mod:`.outbound`: the outbox's messages.

Models import nothing above them (``devices/tests/test_layering.py``).
"""

# Imported in this order on purpose: django-otp lists a person's devices (at sign-in, for the VPN) in the order
# their models were registered, so the app comes first, then the phone, the security key, and the code sets last.
# isort: off
from .factors import AuthenticatorAppDevice, PhoneDevice, PhoneVerification, SecurityKeyDevice
from .tokens import ActivationLink, WebAuthnChallenge, WebAuthnUserHandle
from .codes import BackupCode, BackupCodeDevice, BypassCode, BypassCodeDevice, BypassCodeDeviceManager, CodeSetMixin
from .outbound import OutboundMessage
from .registrations import Registration, WorkingRegistration, mask_phone_number

# isort: on

__all__ = [
    "ActivationLink",
    "AuthenticatorAppDevice",
    "BackupCode",
    "BackupCodeDevice",
    "BypassCode",
    "BypassCodeDevice",
    "BypassCodeDeviceManager",
    "CodeSetMixin",
    "OutboundMessage",
    "PhoneDevice",
    "PhoneVerification",
    "Registration",
    "SecurityKeyDevice",
    "WebAuthnChallenge",
    "WebAuthnUserHandle",
    "WorkingRegistration",
    "mask_phone_number",
]
