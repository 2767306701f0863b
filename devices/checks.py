import ipaddress
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


@register(Tags.security)
def check_encryption_keys(app_configs, **kwargs):
    problems = []
    for index, key in enumerate(settings.FACTOR_ENCRYPTION_KEYS):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            problems.append(
                Error(
                    f"FACTOR_ENCRYPTION_KEYS[{index}] is not a Fernet key (32 bytes, urlsafe base64).",
                    hint="python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'",
                    id="devices.E001",
                )
            )
    return problems


@register(Tags.security, deploy=True)
def check_encryption_keys_set(app_configs, **kwargs):
    if settings.FACTOR_ENCRYPTION_KEYS:
        return []
    return [
        Error(
            "FACTOR_ENCRYPTION_KEYS is not set: factor secrets would be encrypted with a key derived "
            "from SECRET_KEY (OTP-08).",
            id="devices.E101",
        )
    ]


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@register(Tags.security)
def check_webauthn_relying_party(app_configs, **kwargs):
    """Security keys are bound to WEBAUTHN_RP_ID; every accepted origin must be that domain or under it."""
    rp_id = settings.WEBAUTHN_RP_ID
    problems = []
    if not settings.WEBAUTHN_ORIGINS:
        problems.append(Error("WEBAUTHN_ORIGINS is empty: no security key could ever be used.", id="devices.E002"))
    for origin in settings.WEBAUTHN_ORIGINS:
        parts = urlsplit(origin)
        host = parts.hostname or ""
        if parts.scheme not in ("http", "https") or parts.path not in ("", "/") or not host:
            problems.append(
                Error(f"WEBAUTHN_ORIGINS: {origin!r} is not an origin (scheme://host[:port]).", id="devices.E003")
            )
        elif host != rp_id and not host.endswith("." + rp_id):
            problems.append(
                Error(
                    f"WEBAUTHN_ORIGINS: {origin!r} is not on WEBAUTHN_RP_ID {rp_id!r}; browsers would refuse the key.",
                    id="devices.E004",
                )
            )
    if _is_ip_address(rp_id):
        problems.append(
            Warning(
                f"WEBAUTHN_RP_ID is the IP address {rp_id!r}: browsers use security keys only on a domain name.",
                hint="For development set SITE_URL=http://localhost:8000 and browse there.",
                id="devices.W001",
            )
        )
    return problems


@register(Tags.security, deploy=True)
def check_webauthn_origins_https(app_configs, **kwargs):
    return [
        Error(f"WEBAUTHN_ORIGINS: {origin!r} must be https:// in production.", id="devices.E102")
        for origin in settings.WEBAUTHN_ORIGINS
        if not origin.startswith("https://")
    ]


@register(Tags.security, deploy=True)
def check_phone_gateway(app_configs, **kwargs):
    """Production must text and call for real, with credentials: the development gateways send nothing."""
    if settings.PHONE_GATEWAY in ("devices.gateways.OutboxOnlyGateway", "devices.gateways.ConsoleGateway"):
        return [
            Error(
                "PHONE_GATEWAY is a development gateway: no text or call would reach anyone.",
                hint="Set PHONE_GATEWAY=devices.gateways.twilio_from_settings and the TWILIO_* settings.",
                id="devices.E110",
            )
        ]
    if settings.PHONE_GATEWAY == "devices.gateways.twilio_from_settings" and not all(
        (settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN, settings.TWILIO_FROM_NUMBER)
    ):
        return [
            Error(
                "The Twilio gateway needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER.",
                id="devices.E111",
            )
        ]
    return []


@register(Tags.security)
def check_lifetimes(app_configs, **kwargs):
    """Every lifetime a person is told about must be real: never zero or less, and within its requirement."""
    from datetime import timedelta

    lifetimes = {
        "ACTIVATION_LINK_TTL_HOURS": (settings.ACTIVATION_LINK_TTL, timedelta(hours=24), "ACT-01"),
        "PENDING_REGISTRATION_TTL_HOURS": (settings.PENDING_REGISTRATION_TTL, None, ""),
        "PHONE_CODE_TTL_MINUTES": (settings.PHONE_CODE_TTL, timedelta(minutes=10), "SMS-02"),
        "WEBAUTHN_CHALLENGE_TTL_SECONDS": (settings.WEBAUTHN_CHALLENGE_TTL, None, ""),
        "REAUTH_MAX_AGE_SECONDS": (timedelta(seconds=settings.REAUTH_MAX_AGE_SECONDS), None, ""),
    }
    problems = []
    for name, (lifetime, longest, requirement) in lifetimes.items():
        if lifetime <= timedelta(0):
            problems.append(
                Error(f"{name} must be more than 0: nothing could ever be used in time.", id="devices.E005")
            )
        elif longest is not None and lifetime > longest:
            problems.append(Error(f"{name} may be at most {longest} ({requirement}).", id="devices.E006"))
    return problems


@register()
def check_outbox_lease_outlasts_time_limit(app_configs, **kwargs):
    """A send still running must never be taken over: the lease has to outlast the hard time limit of a task."""
    hard_limit = settings.CELERY_TASK_TIME_LIMIT
    if hard_limit and hard_limit >= settings.OUTBOX_SENDING_LEASE_SECONDS:
        return [
            Error(
                f"OUTBOX_SENDING_LEASE_SECONDS ({settings.OUTBOX_SENDING_LEASE_SECONDS}) must be longer than a task "
                f"may run ({hard_limit} s, OUTBOX_SEND_TIME_LIMIT_SECONDS + 5): a slow send would be sent twice.",
                id="devices.E007",
            )
        ]
    return []
