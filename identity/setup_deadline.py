"""The seam through which sign-in asks by when a person without a device must set one up.

``identity`` imports no other app of ours, yet the enrollment campaigns (``campaigns``) decide whether a person who
has not enrolled is sent straight to the wizard or may look around first, told by when. So that app registers one
function here from its ``AppConfig.ready()``; sign-in and the pages' notice ask :func:`setup_deadline`.

The function is called as ``provider(user)`` for a person with no confirmed device and returns a
:class:`SetupDeadline` or None (no campaign applies: sign-in does what it always did, straight to the wizard).
Nobody registered: None.
"""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class SetupDeadline:
    """``enroll_now``: the person may not go on with the password alone now (the policy after a passed deadline, or
    before it, requires enrollment), so sign-in goes straight to the wizard. ``notice``: what the pages say
    meanwhile, "Set up two-step sign-in by <date>"."""

    enroll_now: bool
    notice: str


_providers: list[Callable] = []


def register(provider: Callable) -> None:
    if provider not in _providers:
        _providers.append(provider)


def setup_deadline(user) -> SetupDeadline | None:
    """What the registered provider says for ``user`` (who has no confirmed device; the caller checked), or None."""
    for provider in _providers:
        if (found := provider(user)) is not None:
            return found
    return None
