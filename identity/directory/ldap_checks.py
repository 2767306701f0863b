"""System checks for the directory settings: a misconfigured directory fails ``manage.py check``."""

from django.conf import settings
from django.core.checks import Error, Tags, register


@register(Tags.security)
def check_ldap_settings(app_configs, **kwargs):
    from identity.selectors import STAFF_GROUPS

    problems = []
    if settings.LDAP_SERVER_URIS:
        try:
            import django_auth_ldap  # noqa: F401
            import ldap  # noqa: F401
        except ImportError:
            problems.append(
                Error(
                    "LDAP_SERVER_URIS is set but python-ldap and django-auth-ldap are not installed.",
                    hint="make install-ldap (needs Debian's libldap2-dev and libsasl2-dev).",
                    id="directory.E001",
                )
            )
        if not settings.LDAP_USER_SEARCH_BASE:
            problems.append(Error("LDAP_SERVER_URIS is set but LDAP_USER_SEARCH_BASE is empty.", id="directory.E002"))
    wrong = sorted(set(settings.LDAP_ROLE_GROUPS.values()) - set(STAFF_GROUPS))
    if wrong:
        problems.append(
            Error(
                f"LDAP_ROLE_GROUPS maps directory groups to {wrong}: only {list(STAFF_GROUPS)} may come from the "
                "directory (DIR-04; never superuser).",
                id="directory.E003",
            )
        )
    return problems


@register(Tags.security, deploy=True)
def check_ldap_transport(app_configs, **kwargs):
    """Passwords cross to the directory only over TLS with a verified certificate (DIR-01), unless a lab says so."""
    plain = [uri for uri in settings.LDAP_SERVER_URIS if not uri.lower().startswith("ldaps://")]
    if plain and not settings.LDAP_START_TLS and not settings.LDAP_ALLOW_PLAIN:
        return [
            Error(
                f"LDAP_SERVER_URIS has plain LDAP ({', '.join(plain)}) without StartTLS: passwords would cross the "
                "network in clear.",
                hint="Use ldaps:// URIs or set LDAP_START_TLS=true; LDAP_ALLOW_PLAIN=true only in a lab.",
                id="directory.E101",
            )
        ]
    return []
