"""System checks of the VPN gate's settings: a value that would widen a window fails ``manage.py check``."""

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, register

RADIUS_PASSWORD_MODES = ("password", "code_only")


@register(Tags.security)
def check_vpn_settings(app_configs: Sequence[AppConfig] | None, **kwargs: Any) -> list[CheckMessage]:
    problems: list[CheckMessage] = []
    if not 0 < settings.VPN_SIGNATURE_MAX_SKEW_SECONDS <= 300:
        problems.append(Error("VPN_SIGNATURE_MAX_SKEW_SECONDS must be between 1 and 300 (API-02).", id="vpn.E001"))
    if not 0 < settings.RADIUS_CHALLENGE_TTL_SECONDS <= 120:
        problems.append(Error("RADIUS_CHALLENGE_TTL_SECONDS must be between 1 and 120 (API-05).", id="vpn.E002"))
    if settings.RADIUS_PASSWORD_MODE not in RADIUS_PASSWORD_MODES:
        problems.append(
            Error(f"RADIUS_PASSWORD_MODE must be one of {', '.join(RADIUS_PASSWORD_MODES)}.", id="vpn.E003")
        )
    if not 0 <= settings.VPN_INTEGRATION_CACHE_SECONDS <= 60:
        problems.append(
            Error(
                "VPN_INTEGRATION_CACHE_SECONDS must be between 0 and 60 (API-03: a disabled integration stops soon).",
                id="vpn.E004",
            )
        )
    return problems
