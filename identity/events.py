"""Every action the audit log may hold, each with the sentence people read for it (the person page, the audit log).

:func:`identity.audit.record` refuses an action that is not here, so a new action cannot be written without its
words. A sentence is a template over the event's details: ``{key}`` is a detail, and a part in square brackets is
shown only when every detail it names is there (``[ with {factor}]``). Detail values that are code words (a
factor, an entry point) read as words through ``VALUE_WORDS``; other apps add theirs with :func:`name_values` (the
help desk names its actions and identity-check methods, so ``identity`` imports nothing of theirs).
"""

import re
import string

EVENTS: dict[str, str] = {
    # Sign-in and lockout
    "signin.password_ok": "Password accepted at sign-in",
    "signin.password_failed": "Wrong password at sign-in",
    "signin.password_throttled": "Sign-in refused: too many wrong passwords[ {limit}]",
    "signin.second_factor_ok": "Signed in[ with {factor}][ ({entry_point})][, {method}]",
    "signin.second_factor_failed": "Wrong second-factor code[ ({factor})][ at {entry_point}][: {consecutive_failures} in a row]",
    "signin.refused_locked": "Sign-in refused: the account is locked[ ({entry_point})]",
    "signin.setup_held": "Sign-in stopped: setting up a new device is on hold after the last one was reported lost",
    "signin.signed_out": "Signed out",
    "signin.code_sent": "A sign-in code was sent[ by {channel}][ to {phone}]",
    "account.locked": "Account locked after[ {consecutive_failures}] wrong codes",
    "account.unlocked": "Account unlocked[: “{reason}”]",
    "account.auto_unlocked": "Account unlocked automatically when the lockout ended",
    "admin.refused_factor": "Turned away from the admin: signed in with {factor}, which can be phished; a security key or passkey is required[ (asked for {path})]",
    "sessions.ended": "Signed out everywhere[ ({count} sessions ended)][: “{reason}”]",
    # Devices and enrollment
    "enrollment.started": "Started setting up a device[ ({kind})]",
    "enrollment.phone_entered": "Entered a phone number[ ({phone})]",
    "enrollment.secret_issued": "A new authenticator app key was issued for setup",
    "enrollment.code_rejected": "Wrong code while setting up a device",
    "enrollment.security_key_rejected": "A security key was refused while setting it up",
    "phone.code_sent": "A code to check the phone number was sent[ by {channel}]",
    "phone.code_rejected": "Wrong code for the phone number check[ (attempt {attempts})]",
    "phone.verified": "Phone number checked[ by {channel}]",
    "device.bound": "Device set up and working[ ({kind}, {factor})]",
    "device.renamed": "Device renamed[ from “{from}”][ to “{to}”]",
    "device.retired": "Device removed[: “{reason}”]",
    "device.reported_lost": "Device reported lost: it no longer works",
    "device.reactivation_started": "Started moving the authenticator app to a new phone",
    "device.old_phone_stopped": "Old phone reported lost while moving the authenticator app: its codes stopped",
    "device.reactivation_code_rejected": "Wrong code while moving the authenticator app to a new phone",
    "device.reactivated": "Authenticator app moved to a new phone; the old one stopped working",
    "device.reactivation_ended": "Moving the authenticator app to a new phone was ended",
    "backup_codes.generated": "New backup codes made[ ({count} codes)]; any earlier ones stopped working",
    "bypass_codes.issued": "Bypass codes issued[: {count}][, valid for {valid_minutes} minutes]",
    "security_key.credential_refused": "A security key was refused at sign-in",
    "security_key.counter_regressed": "A security key's counter went backwards: it may have been copied",
    "signin.passwordless_refused": "A passkey that is not in use here was refused at sign-in",
    "signin.key_challenge_not_open": (
        "A security key's answer came to a request that had expired, was already answered or was missing: "
        "not checked, nothing counted toward the lockout"
    ),
    "signin.passwordless_throttled": "Passkey sign-in paused for a few minutes: too many requests from this address[ ({network})]",
    # Links and recovery
    "activation_link.sent": "An activation link was emailed",
    "activation_link.password_failed": "Wrong password on an activation link[ ({failures} so far)]",
    "activation_link.used": "An activation link was used",
    "recovery.link_sent": "A recovery link was emailed[ (identity checked by {identity_check})]",
    "recovery.started": "Recovery started from an emailed link",
    # The person's record and VPN access
    "person.details_changed": "Details changed[: “{reason}”]",
    "person.email_changed": "Email address changed[ from {from}][ to {to}]",
    "vpn_access.requested": "Asked for VPN access[: “{reason}”]",
    "vpn_access.approved": "VPN access approved[: “{reason}”]",
    "vpn_access.revoked": "VPN access ended[: “{reason}”]",
    # The institution's directory (identity/directory/)
    "signin.refused_inactive": "Sign-in refused: the account is not active",
    "signin.directory_refused": "Password refused by the directory[ ({entry_point})][: {answer}]",
    "signin.no_password_here": "Password not checked[ ({entry_point})]: the person came from a SCIM client, and no LDAP directory is configured to check it",
    "signin.directory_unreachable": "Password not checked[ ({entry_point})]: the directory could not be reached[ ({error})]",
    "directory.person_created": "Came from the directory (a new person)[: sync run {sync_run}][: SCIM client {scim_client}]",
    "directory.person_updated": "Details changed in the directory[: sync run {sync_run}][: SCIM client {scim_client}]",
    "directory.role_granted": "Role granted by the directory: {role}",
    "directory.role_removed": "Role removed by the directory: {role}",
    "directory.role_refused": "The directory asked for roles that are not allowed; none given",
    "directory.vpn_group_joined": "Put in the directory's VPN group (VPN access follows while the account is active)",
    "directory.vpn_group_left": "Taken out of the directory's VPN group",
    "directory.person_deactivated": "Deactivated: left the directory or disabled there[: {reason}]",
    "directory.person_reactivated": "Active again: enabled in the directory",
    "directory.password_changed": "Password changed or reset in the directory: signed out everywhere[ (sessions ended: {sessions_ended})]",
    "directory.account_linked": "Local account linked to the directory",
    "directory.sync_requested": "Asked for a sync from the directory[ of {person}] (sync run {sync_run})",
    "directory.sync_request_refused": "A sync of everyone was asked for but not run: another sync was running",
    "directory.sync_run_applied": "A held directory sync was applied[: {sync_outcome}][; {deactivated} deactivated][, {created} created][, {updated} updated][, {reactivated} reactivated][, {errors} errors] (sync run {sync_run})",
    "directory.sync_run_discarded": "A held directory sync was discarded: nobody deactivated (sync run {sync_run})",
    "directory.scim_client_created": "SCIM client added[: {name}]",
    "directory.scim_client_changed": "SCIM client changed",
    "directory.scim_client_disabled": "SCIM client disabled",
    "directory.scim_token_rotated": "SCIM client's token replaced",
    "directory.scim_person_deleted": "Deleted by a SCIM client: deactivated, the record kept",
    "directory.scim_group_change_refused": "A SCIM group change was refused: it would take {would_remove} people out of {group} at once",
    "directory.scim_refused": "A SCIM request was refused[: {reason}]",
    "directory.scim_deactivation_refused": "A SCIM client was refused a deactivation: it had deactivated {deactivated} people within the hour[ (the limit is {limit})]",
    "directory.scim_deactivation_limit_lifted": "A SCIM client may deactivate people again: the hourly limit was lifted[ after {deactivated} deactivations]",
    # Operations
    "encryption.keys_rotated": "Factor secrets re-encrypted under the newest key[: {rotated} rows][, {unreadable} unreadable]",
    # The help desk
    "helpdesk.identity_checked": "Identity checked[: {method}][ (reference {reference})]",
    "helpdesk.action": "Help desk: {action}[ (identity check: {method}, reference {reference})]",
    "helpdesk.approval_requested": "Asked a second agent to approve: {action}[ (why: {why})]",
    "helpdesk.request_approved": "A second agent approved: {action}",
    "helpdesk.request_declined": "A second agent declined: {action}",
    "helpdesk.case_opened": "Support case[ {case}] opened",
    "helpdesk.case_noted": "Note added to support case[ {case}]",
    # The VPN
    "vpn.preauth": "VPN asked whether the person may connect[: {result}]",
    "vpn.code_requested": "VPN asked for a code to be sent[ by {factor}][: {reason}]",
    "vpn.auth_denied": "VPN sign-in refused[: {reason}]",
    "vpn.api_refused": "A VPN request was refused[: {reason}]",
    "vpn.radius_challenged": "VPN (RADIUS) asked for a code",
    "vpn.radius_rejected": "VPN (RADIUS) sign-in refused[: {reason}]",
    "vpn.integration_created": "VPN integration created[: {name}]",
    "vpn.integration_changed": "VPN integration changed",
    "vpn.integration_rotated": "VPN integration's secret key replaced",
    "vpn.radius_client_created": "RADIUS client added[: {radius_client}]",
    "vpn.radius_client_changed": "RADIUS client changed[: {radius_client}]",
    "vpn.radius_client_rotated": "RADIUS client's shared secret replaced[: {radius_client}]",
    "vpn.password_alone_allowed": "Let onto the VPN with the password alone, no second factor[ ({door})][: campaign “{campaign_name}” allows it][ until {deadline}]",
    # Enrollment campaigns
    "campaigns.created": "Enrollment campaign created[: “{name}”]",
    "campaigns.changed": "Enrollment campaign changed[ (campaign {campaign})]",
    "campaigns.closed": "Enrollment campaign closed[: “{name}”]",
    # Reports and housekeeping
    "report.exported": "Report exported[: {report}][ as {format}]",
    "report.export_downloaded": "Exported report downloaded[: {report}]",
    "report.weekly_summary_sent": "Weekly summary sent",
    "campaign.nudges_started": "Resilience nudges started for a campaign[: {name}]",
    "campaign.weekly_summary_sent": "Campaign's weekly summary sent to its owner",
    "retention.purged": "Old records removed by the retention rules",
}

# Code words that detail values hold, as words, per detail key.
VALUE_WORDS: dict[str, dict[str, str]] = {
    "factor": {
        "authenticator_app": "the authenticator app",
        "totp": "the authenticator app",
        "phone": "a code by text or call",
        "security_key": "a security key",
        "passkey": "a passkey",
        "backup_code": "a backup code",
        "bypass_code": "a bypass code from the help desk",
        "passcode": "a passcode",
    },
    "entry_point": {"web": "web sign-in", "vpn": "VPN", "radius": "VPN over RADIUS", "link": "an emailed link"},
    "door": {"auth_api": "VPN through the Auth API", "radius": "VPN over RADIUS"},
    "channel": {"sms": "text message", "voice": "voice call"},
    # Which limit of the password throttle was met (identity.services.password_sign_in_throttled); RADIUS counts
    # toward the ID only.
    "limit": {"id": "for this institution ID", "address": "from this address"},
    "method": {"passwordless": "without a password (passkey alone)"},
    "kind": {
        "mobile": "mobile phone",
        "tablet": "tablet",
        "landline": "landline",
        "security_key": "security key",
        "passkey": "passkey",
    },
    "sync_outcome": {  # identity.directory.models.DirectorySyncRun.Status, once a held run was applied
        "applied": "done",
        "held": "held again, someone new would be deactivated",
        "failed": "it failed",
    },
    "answer": {  # identity.directory.ldap_password.Answer
        "disabled": "the account is disabled",
        "locked": "the account is locked",
        "expired": "the password has expired",
        "must_change": "the password must be changed",
        "wrong_password": "wrong password",
    },
    # Reasons written as codes: SCIM's deletion and refusals, the devices' retention (identity.directory), the
    # refusals of security keys and passkeys. A reason written "deactivated: <code>" (VPN access ended by a
    # deactivation) reads its code the same way.
    "reason": {
        "scim_delete": "deleted by a SCIM client",
        "directory_retention": "the person left the directory longer ago than devices are kept",
        "network": "it came from an address outside the client's networks",
        "disabled": "the client is disabled",
        # Security keys and passkeys refused (devices.services.security_keys)
        "other_registration": "the answer was for another device being set up",
        "not_pending": "the device was no longer waiting to be set up",
        "not_discoverable": "the key cannot sign in by itself, as a passkey must",
        "credential_registered": "the key is registered already",
        "not_in_use": "the passkey is no longer in use",
        "unknown_credential": "the passkey is not known here",
        "staff_key_needed": "a staff account adds a key only when signed in with a key it has",
    },
}

_OPTIONAL = re.compile(r"\[([^\[\]]*)\]")


def name_values(key: str, words: dict[str, str]) -> None:
    """Read the detail ``key``'s code words as ``words`` from now on (another app's actions, methods)."""
    VALUE_WORDS.setdefault(key, {}).update(words)


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def value_words(key: str, value) -> str:
    """A detail's value as words: a code word of ``VALUE_WORDS`` for ``key`` ("authenticator_app": "the
    authenticator app"), the same after a "prefix: ", anything else as it was recorded."""
    if not isinstance(value, str):
        return str(value)
    words = VALUE_WORDS.get(key, {})
    if value in words:
        return words[value]
    prefix, colon, code = value.rpartition(": ")
    return f"{prefix}{colon}{words[code]}" if colon and code in words else value


def title(action: str) -> str:
    """The action's sentence without its details ("Signed in", "Help desk: …"), to choose it from a list."""
    template = _OPTIONAL.sub("", EVENTS.get(action, action))
    return template.format(**{name: "…" for name in _fields(template)})


def describe(action: str, details: dict | None) -> str:
    """The event as a sentence: ``action``'s words filled from ``details`` (missing details leave their part out).

    An action without words (only an old row could be one) reads as its name.
    """
    template = EVENTS.get(action)
    if template is None:
        return action
    details = {key: value for key, value in (details or {}).items() if value not in (None, "")}

    def keep(part: re.Match) -> str:
        return part.group(1) if _fields(part.group(1)) <= details.keys() else ""

    template = _OPTIONAL.sub(keep, template)
    values = {name: value_words(name, details[name]) if name in details else "?" for name in _fields(template)}
    return template.format(**values)


def detail_words(details: dict | None) -> str:
    """An event's details as a person reads them, "Key: value; …" by key: each key in words, each code word of
    ``VALUE_WORDS`` as its words, everything else as it was recorded (the reports' pages show this beside the
    sentence; their files keep the details as JSON)."""
    return "; ".join(
        f"{key.replace('_', ' ').capitalize()}: {value_words(key, value)}"
        for key, value in sorted((details or {}).items())
        if value not in (None, "")
    )
