"""The staff admin: one OTP-required admin site for help desk and auditors (SES-09).

Every ModelAdmin for staff lives in this package and registers on ``site``.
"""

from . import audit, desk, directory, people, registrations  # noqa: E402,F401  (register the model admins)
from .site import site

__all__ = ["site"]
