"""The device pages, one module per area.

- :mod:`.access`: the decorators every device page uses, and the session keys they share.
- :mod:`.wizard`: the enrollment wizard (its step order comes from :mod:`devices.kinds`).
- :mod:`.links`: opening an emailed activation or recovery link.
- :mod:`.my_devices`: "My devices" and what it offers for a device in use.
- :mod:`.keys`: security keys in the browser (the wizard step and signing in).
"""

from .access import LINK_SESSION_KEY, LOSS_REPORTED_SESSION_KEY, RECOVERY_SESSION_KEY, person_view

__all__ = ["LINK_SESSION_KEY", "LOSS_REPORTED_SESSION_KEY", "RECOVERY_SESSION_KEY", "person_view"]
