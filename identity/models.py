from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.contrib.sessions.backends.db import SessionStore as DatabaseSessionStore
from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import models
from django.db.models.functions import Upper
from django.utils import timezone


class User(AbstractUser):
    """A person of the institution. ``username`` is the institution ID."""

    class VpnAccess(models.TextChoices):
        NONE = "none", "None"
        REQUESTED = "requested", "Requested"
        APPROVED = "approved", "Approved"
        REVOKED = "revoked", "Revoked"

    department = models.CharField(max_length=200, blank=True)
    vpn_access = models.CharField(max_length=16, choices=VpnAccess.choices, default=VpnAccess.NONE)
    vpn_access_changed_at = models.DateTimeField(null=True, blank=True)
    # Indexed where set (Meta): most people's is never set, and an index of NULLs costs every joiner a write.
    vpn_access_changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    # Lockout state (OTP-01): consecutive second-factor failures over every factor and entry point.
    second_factor_failures = models.PositiveIntegerField(default=0)
    locked_at = models.DateTimeField(null=True, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)
    # Set when the person's last working factor was reported lost (BND-02). From then on a password alone no
    # longer opens the first-device setup, as it does for someone who never had one; the help desk's audited
    # unlock lifts it. A device bound meanwhile (in the session that reported the loss) makes it moot.
    lost_last_factor_at = models.DateTimeField(null=True, blank=True)

    class Source(models.TextChoices):
        LOCAL = "local", "Local account"
        LDAP = "ldap", "Directory (LDAP / Active Directory)"
        SCIM = "scim", "Directory (SCIM)"

    # Where the person comes from (identity/directory/). A directory person has no usable local password and is
    # checked only against the directory (DIR-01); the directory owns their names, email and department.
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.LOCAL)
    # The directory's stable identifier (Active Directory objectGUID, OpenLDAP entryUUID, a SCIM client's id or
    # externalId): a renamed DN or a changed institution ID is still the same person.
    directory_id = models.CharField(max_length=255, blank=True)
    directory_dn = models.CharField("directory DN", max_length=1024, blank=True)
    # The mobile number the directory holds for the person, in E.164. Only offered in the enrollment wizard ("Is
    # this your number?"): it is never a factor until the person proves it with a code, as a typed number is.
    directory_mobile = models.CharField(max_length=16, blank=True)
    # A SCIM client's own identifier for the person (externalId: Entra ID matches people by it), kept as given.
    directory_external_id = models.CharField(max_length=255, blank=True)
    # The directory's password-changed stamp as the last sync read it (LDAP_ATTRIBUTES' password_changed: Active
    # Directory's pwdLastSet, OpenLDAP's pwdChangedTime), as text; "" until a sync first reads one. Django's session
    # hash covers only the local password, which a directory person never changes: a new stamp ends their sessions
    # (identity.directory.people.apply_password_change).
    directory_password_changed = models.TextField(blank=True, editable=False)
    # Whether a SCIM client has the person in its VPN group. Kept while the person is deactivated (which revokes
    # their VPN access), so that reactivating them gives back the access the group gives: a cloud directory sends a
    # membership once, never again on reactivation. The LDAP sync reads the group from the directory at every run.
    scim_vpn_member = models.BooleanField("in the SCIM VPN group", default=False)
    # Whether a SCIM client has ever put the person in its VPN group or taken them out of it: from then on that group
    # decides their VPN access, not the help desk (identity.selectors.vpn_access_from_directory).
    scim_vpn_by_group = models.BooleanField("VPN access decided by the SCIM VPN group", default=False)
    # Set while a directory leaver is deactivated (DIR-02); is_active is False meanwhile. Devices are kept until
    # DIRECTORY_RETAIN_DAYS after it, so a person re-enabled after a leave gets them back.
    deactivated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "person"
        verbose_name_plural = "people"
        constraints = [
            models.UniqueConstraint(
                fields=["source", "directory_id"],
                condition=~models.Q(directory_id=""),
                name="identity_user_one_account_per_directory_id",
            ),
            # An institution ID is held whatever its case (a directory's, and SCIM's userName, RFC 7643, are
            # case-insensitive): the holder checks (people.apply_record, SCIM's POST, the sync's compare) tell who
            # holds it, and this index refuses the second of two creations at once in two cases, which both passed
            # them. One index for that and for the desk's case-insensitive prefix search: on PostgreSQL migration
            # 0015 builds it with text_pattern_ops, which serves "=" and LIKE 'ABC%' alike (an operator class the
            # SQLite default does not have), so a joiner writes one index on UPPER(username), not two.
            models.UniqueConstraint(
                Upper("username"),
                name="identity_user_upper_username",
                violation_error_message="This institution ID is held here already, in another case.",
            ),
        ]
        indexes = [
            models.Index(
                fields=["vpn_access_changed_by"],
                condition=models.Q(vpn_access_changed_by__isnull=False),
                name="identity_user_vpn_changed_by",
            )
        ]

    @property
    def from_directory(self) -> bool:
        return self.source != self.Source.LOCAL

    @property
    def institution_id(self) -> str:
        return self.username

    @property
    def setup_on_hold(self) -> bool:
        """Their last working factor was reported lost and the help desk has not reopened the setup (BND-02)."""
        return self.lost_last_factor_at is not None

    @property
    def is_locked(self) -> bool:
        return self.lock_in_force(self.locked_at, self.locked_until)

    @staticmethod
    def lock_in_force(locked_at, locked_until) -> bool:
        """The lockout rule on the two columns alone (the VPN's hot path reads them without building a User).
        :meth:`locked_now` is the same rule for a query."""
        return locked_at is not None and (locked_until is None or timezone.now() < locked_until)

    @staticmethod
    def locked_now() -> models.Q:
        """:meth:`lock_in_force` as a query condition: a lock whose ``locked_until`` has passed is over, whatever
        ``locked_at`` still says (it is cleared at the next sign-in)."""
        return models.Q(locked_at__isnull=False) & (
            models.Q(locked_until__isnull=True) | models.Q(locked_until__gt=timezone.now())
        )


class AuditEvent(models.Model):
    """One security-relevant event. Append-only and hash-chained (AC-08, AC-09).

    Written only by :func:`identity.audit.record`. ``sequence`` is gap-free, so a
    deleted row shows as a missing number; ``hash`` covers the previous hash and
    this row's canonical form, so an edited row breaks the chain from there on.
    """

    sequence = models.PositiveBigIntegerField(unique=True, editable=False)
    created_at = models.DateTimeField(editable=False, db_index=True)
    # Each index here is written by every event, the VPN check's among them, so each is one a query needs (Meta):
    # the actor's where there is one (most events have none); the subject's is helpdesk 0003's (subject, sequence
    # DESC), whose leading column serves any query by subject; the action's one b-tree serves "=", "IN" and the
    # reports' prefixes ("desk.%") alike.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    subject = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="audit_events",
        db_index=False,
    )
    action = models.CharField(max_length=64)
    details = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    prev_hash = models.CharField(max_length=64, editable=False)
    hash = models.CharField(max_length=64, editable=False)

    class Meta:
        ordering = ["-sequence"]
        indexes = [
            models.Index(fields=["action"], opclasses=["varchar_pattern_ops"], name="identity_audit_action"),
            models.Index(fields=["actor"], condition=models.Q(actor__isnull=False), name="identity_audit_actor"),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action}"


class PersonSession(AbstractBaseSession):
    """A session row that names its person and the device it was verified with (Django's documented way to
    extend the database session engine), so that ending a person's sessions when a device is lost is one
    indexed query, not a decoding of every session (BND-05). Written by ``identity.session_store``."""

    user_id = models.BigIntegerField(null=True, db_index=True)
    otp_device_id = models.CharField(max_length=100, blank=True)

    class Meta(AbstractBaseSession.Meta):
        db_table = "identity_session"

    @classmethod
    def get_session_store_class(cls):
        # Only get_decoded() asks for this, and it only decodes: Django's own database store decodes our rows the
        # same way (SessionBase.decode, one signer and serializer). Naming identity.session_store here would make the
        # model import the engine that is built on it.
        return DatabaseSessionStore
