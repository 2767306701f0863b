"""System checks for the directory settings: a misconfigured directory fails ``manage.py check``."""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register


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


@register(Tags.security, deploy=True)
def check_ldap_ca_file(app_configs, **kwargs):
    """The CA file the directory's certificate is verified against can be read by this process: libldap refuses
    every connection otherwise, so nobody from the directory could sign in and the sync could not read."""
    path = settings.LDAP_CA_CERT_FILE
    if not settings.LDAP_SERVER_URIS or not path:
        return []
    try:
        with open(path, "rb") as ca_file:
            ca_file.read(1)
    except OSError as error:
        return [
            Error(
                f"LDAP_CA_CERT_FILE ({path}) cannot be read by this process ({error.strerror or error}): no connection "
                "to the directory can verify its certificate, so nobody from the directory can sign in.",
                hint="Point LDAP_CA_CERT_FILE at the CA certificate (PEM) that signed the directory servers' "
                "certificates, readable by the user the site runs as.",
                id="directory.E102",
            )
        ]
    return []


@register(Tags.security, Tags.database, deploy=True)
def check_scim_without_ldap(app_configs, **kwargs):
    """People a SCIM client provisions sign in with their directory password only through LDAP: with enabled SCIM
    clients and no LDAP_SERVER_URIS, nobody they bring in has a password here (docs/directory.md). Reads the
    database (``manage.py check --deploy --database default``)."""
    from .models import ScimClient

    # As Django's own database checks: only when asked to read the database (``--database``); a deploy check run
    # before migrating (make check-deploy) has no tables to read.
    if not kwargs.get("databases"):
        return []
    if settings.LDAP_SERVER_URIS or not ScimClient.objects.filter(enabled=True).exists():
        return []
    return [
        Warning(
            "SCIM clients are enabled but LDAP_SERVER_URIS is empty: the people they provision have no password "
            "this site can check, and can sign in only with a passkey the help desk sets up with them.",
            hint="Set LDAP_SERVER_URIS (and the LDAP_* settings) to the directory whose passwords they use; "
            'docs/directory.md, "Who can sign in".',
            id="directory.W102",
        )
    ]
