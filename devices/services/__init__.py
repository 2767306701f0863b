"""State changes of devices, one module per area.

- :mod:`.common`: row locks, pending and re-authentication checks, device names, taking factors out of use.
- :mod:`.enrollment`: from starting a registration to its confirmed activation.
- :mod:`.links`: activation and recovery links.
- :mod:`.phones`: ownership codes, enabling texts and calls, sign-in codes.
- :mod:`.lifecycle`: rename, retire, report lost, backup codes.
- :mod:`.reactivation`: a new phone for an app, or the old one lost.
- :mod:`.security_keys`: binding a security key and signing in with one.
- :mod:`.notices`: emails to the person about changes to their factors.
- :mod:`.directory`: what a directory joiner, mover or leaver gains or loses here (``identity.directory.hooks``).

The public names are re-exported here, so callers write ``from devices import services`` and
``services.start_enrollment(...)`` without knowing the module.
"""

from .common import (
    SECRET_BYTES,
    ReauthRequired,
    app_device_name,
    device_ids,
    hash_token,
    lock_registration,
    phone_device_name,
    require_pending,
    require_recent_verification,
    require_setup_open,
    revoke_open_links,
    security_key_device_name,
)
from .enrollment import confirm_activation, issue_app_secret, set_phone_number, set_platform, start_enrollment
from .lifecycle import (
    generate_backup_codes,
    rename_registration,
    report_lost,
    retire_all_devices,
    retire_registration,
)
from .links import find_activation_link, open_activation_link, send_activation_link, send_recovery_link
from .notices import NOTICES, notify_person
from .phones import confirm_phone_code, send_phone_code, send_signin_code
from .reactivation import confirm_reactivation, end_reactivation, expire_stale_reactivations, start_reactivation

__all__ = [
    "NOTICES",
    "SECRET_BYTES",
    "ReauthRequired",
    "app_device_name",
    "confirm_activation",
    "confirm_phone_code",
    "confirm_reactivation",
    "device_ids",
    "end_reactivation",
    "expire_stale_reactivations",
    "find_activation_link",
    "generate_backup_codes",
    "hash_token",
    "issue_app_secret",
    "lock_registration",
    "notify_person",
    "open_activation_link",
    "phone_device_name",
    "rename_registration",
    "report_lost",
    "require_pending",
    "require_recent_verification",
    "require_setup_open",
    "retire_all_devices",
    "retire_registration",
    "revoke_open_links",
    "security_key_device_name",
    "send_activation_link",
    "send_phone_code",
    "send_recovery_link",
    "send_signin_code",
    "set_phone_number",
    "set_platform",
    "start_enrollment",
    "start_reactivation",
]
