"""System checks: misconfiguration fails ``manage.py check`` instead of weakening sign-in."""

import ipaddress

from django.conf import settings
from django.core.checks import Error, Info, Tags, Warning, register

from . import staff_factor


@register(Tags.security)
def check_lockout_settings(app_configs, **kwargs):
    problems = []
    if not 1 <= settings.LOCKOUT_THRESHOLD <= 10:
        problems.append(Error("LOCKOUT_THRESHOLD must be between 1 and 10 (OTP-01).", id="identity.E001"))
    if not 0 < settings.SIGNIN_PENDING_SECONDS <= 600:
        problems.append(Error("SIGNIN_PENDING_SECONDS must be between 1 and 600 (SES-02).", id="identity.E002"))
    if settings.LOCKOUT_AUTO_UNLOCK_MINUTES < 0:
        problems.append(Error("LOCKOUT_AUTO_UNLOCK_MINUTES cannot be negative.", id="identity.E003"))
    return problems


@register(Tags.security)
def check_metrics_settings(app_configs, **kwargs):
    """/metrics is answered to METRICS_NETWORKS or METRICS_TOKEN (docs/operations.md, "Metrics")."""
    problems = []
    for network in settings.METRICS_NETWORKS:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            problems.append(Error(f"METRICS_NETWORKS: {network!r} is not a network.", id="identity.E011"))
    if settings.METRICS_TOKEN and len(settings.METRICS_TOKEN) < 32:
        problems.append(Error("METRICS_TOKEN must be at least 32 characters when set.", id="identity.E012"))
    return problems


@register(Tags.security, deploy=True)
def check_deploy_identity(app_configs, **kwargs):
    problems = []
    if not settings.SITE_URL.startswith("https://"):
        problems.append(Error("SITE_URL must be an https:// URL in production (ACT-03, SES-05).", id="identity.E101"))
    if settings.SECRET_KEY == settings.DEV_SECRET_KEY:
        problems.append(Error("SECRET_KEY is the development key; set SECRET_KEY.", id="identity.E102"))
    if settings.DEBUG:
        problems.append(Error("DEBUG must be off in production.", id="identity.E103"))
    if settings.BEHIND_TLS_PROXY and not settings.TRUSTED_PROXY_COUNT:
        problems.append(
            Warning(
                "BEHIND_TLS_PROXY is set but TRUSTED_PROXY_COUNT is 0: every request seems to come from the proxy, "
                "so one address's wrong passwords pause sign-in for everyone and the audit log records the proxy.",
                hint="Set TRUSTED_PROXY_COUNT to the number of proxies that append to X-Forwarded-For.",
                id="identity.W104",
            )
        )
    return problems


@register(Tags.security)
def check_session_store(app_configs, **kwargs):
    from .open_sessions import ENGINE, session_store_names_people

    if session_store_names_people():
        return []
    return [
        Error(
            f"SESSION_ENGINE must be {ENGINE!r}: a lost device must end every session verified with it, not only "
            "the one in hand (BND-05), and only that engine records whose each session is.",
            id="identity.E004",
        )
    ]


# Values copied from config/production.env.example (or written as a reminder) that must never reach production.
PLACEHOLDER_MARKERS = ("replace-me", "replace-with", "change-me", "changeme")


def _looks_hand_made(fernet_key: str) -> bool:
    """A Fernet key whose 32 bytes are all printable text was typed, not generated: random bytes are all
    printable with odds of about 1 in 10^14. The example file's key is the base64 of a sentence."""
    import base64
    import binascii

    try:
        raw = base64.urlsafe_b64decode(fernet_key.encode())
    except (binascii.Error, ValueError):
        return False
    return len(raw) == 32 and all(32 <= byte < 127 for byte in raw)


@register(Tags.security, deploy=True)
def check_no_placeholders(app_configs, **kwargs):
    secrets = {
        "SECRET_KEY": settings.SECRET_KEY,
        "AUDIT_CHECKPOINT_KEY": settings.AUDIT_CHECKPOINT_KEY,
        "the DATABASE_URL password": settings.DATABASES["default"].get("PASSWORD") or "",
        "the EMAIL_URL password": getattr(settings, "EMAIL_HOST_PASSWORD", "") or "",
        "TWILIO_ACCOUNT_SID": getattr(settings, "TWILIO_ACCOUNT_SID", ""),
        "TWILIO_AUTH_TOKEN": getattr(settings, "TWILIO_AUTH_TOKEN", ""),
        "METRICS_TOKEN": settings.METRICS_TOKEN,
    }
    secrets.update(
        {f"FACTOR_ENCRYPTION_KEYS[{i}]": key for i, key in enumerate(getattr(settings, "FACTOR_ENCRYPTION_KEYS", []))}
    )
    problems = []
    for name, value in secrets.items():
        hand_made = name.startswith("FACTOR_ENCRYPTION_KEYS") and _looks_hand_made(value)
        if hand_made or any(marker in value.lower() for marker in PLACEHOLDER_MARKERS):
            problems.append(
                Error(
                    f"{name} is a placeholder (from the example file or typed by hand), not a generated secret.",
                    hint="Generate it: python -c 'import secrets; print(secrets.token_urlsafe(50))', or for a "
                    "Fernet key: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'",
                    id="identity.E105",
                )
            )
    return problems


@register(Tags.security, Tags.database, deploy=True)
def check_database_role(app_configs, **kwargs):
    """AC-10: the site must not serve as a role that could rewrite the audit log. Connects to the database: a
    PostgreSQL database that cannot be reached fails the check; only a database that is not PostgreSQL skips it."""
    from django.db import DatabaseError, connections

    from .db_roles import role_problems

    connection = connections["default"]
    if connection.vendor != "postgresql":
        return [
            Info(
                f"The database role was not checked: DATABASE_URL is not PostgreSQL ({connection.vendor}), which "
                "has no roles. Production runs on PostgreSQL, as an app role that owns nothing (AC-10).",
                hint="Run manage.py check --deploy with the site's own DATABASE_URL where the database is reachable.",
                id="identity.I106",
            )
        ]
    hint = (
        'Serve as the app role and migrate as the owner role: docs/operations.md, "Database roles", and '
        "config/production.env.example."
    )
    try:
        problems = role_problems(connection)
    except DatabaseError as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        problems = [f"Could not check the role the site connects as (AC-10): {reason}"]
        hint = "Run manage.py check --deploy where the database is reachable, with the site's own DATABASE_URL."
    return [Error(problem, hint=hint, id="identity.E106") for problem in problems]


# Shorter than a generated key (secrets.token_urlsafe(32) gives 43 characters) is typed, not generated.
CHECKPOINT_KEY_MIN_LENGTH = 32


@register(Tags.security, deploy=True)
def check_audit_checkpoint_key(app_configs, **kwargs):
    """AC-11: the key that signs the audit chain's checkpoints is set, long, and a secret of its own."""
    key = settings.AUDIT_CHECKPOINT_KEY
    others = {
        "SECRET_KEY": [settings.SECRET_KEY],
        "FACTOR_ENCRYPTION_KEYS": list(getattr(settings, "FACTOR_ENCRYPTION_KEYS", [])),
        "the DATABASE_URL password": [settings.DATABASES["default"].get("PASSWORD") or ""],
    }
    if key == settings.DEV_AUDIT_CHECKPOINT_KEY:
        problem = "AUDIT_CHECKPOINT_KEY is not set: the audit checkpoints would be signed with the development key."
    elif len(key) < CHECKPOINT_KEY_MIN_LENGTH:
        problem = f"AUDIT_CHECKPOINT_KEY is shorter than {CHECKPOINT_KEY_MIN_LENGTH} characters."
    else:
        shared = [name for name, values in others.items() if key in values]
        if not shared:
            return []
        problem = f"AUDIT_CHECKPOINT_KEY is the same as {' and '.join(shared)}: it must be a secret of its own."
    return [
        Error(
            problem + " It signs the audit log's checkpoints kept outside the database (AC-11).",
            hint="Generate one: python -c 'import secrets; print(secrets.token_urlsafe(50))'",
            id="identity.E107",
        )
    ]


@register(Tags.security)
def check_staff_phishing_resistant_date(app_configs, **kwargs):
    """STAFF_PHISHING_RESISTANT_FROM is a date (WA-05): a typo must not leave the rule silently off."""
    try:
        staff_factor.enforced_from()
    except ValueError:
        value = settings.STAFF_PHISHING_RESISTANT_FROM
        return [
            Error(
                f"STAFF_PHISHING_RESISTANT_FROM must be a date as YYYY-MM-DD, not {value!r}.",
                hint="For example 2027-03-01; leave it empty to not require a security key or passkey of staff yet.",
                id="identity.E013",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def check_staff_phishing_resistant_set(app_configs, **kwargs):
    """Unset in production is a choice during a rollout (staff need keys first), so it is said, not failed on."""
    if (settings.STAFF_PHISHING_RESISTANT_FROM or "").strip():
        return []
    return [
        Info(
            "STAFF_PHISHING_RESISTANT_FROM is not set: staff may still sign in to the admin with codes from an app, a "
            "text or a call, which can be phished (WA-05).",
            hint="Set the date from which the admin requires a security key or passkey; until then staff are reminded.",
            id="identity.I108",
        )
    ]
