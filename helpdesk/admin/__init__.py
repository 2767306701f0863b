"""The help desk's model admins, on the staff admin site (``identity.admin_site``, SES-09).

Every ModelAdmin for the desk and the auditors lives in this package; Django's admin autodiscovery imports it.
"""

from . import audit, desk, directory, directory_sync, people, registrations  # noqa: F401  (register the model admins)
