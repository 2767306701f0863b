"""System checks: misconfiguration fails ``manage.py check`` instead of weakening sign-in."""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


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
    from .open_sessions import session_store_has_table

    if session_store_has_table():
        return []
    return [
        Error(
            "SESSION_ENGINE must keep sessions in the database (db or cached_db): a lost device must end every "
            "session verified with it, not only the one in hand (BND-05).",
            id="identity.E004",
        )
    ]
