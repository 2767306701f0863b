"""The seam between the people service and what other apps keep about a person.

``identity`` imports no other app of ours, yet a leaver also loses things that live in ``devices`` (open links,
bypass codes, after a while the devices themselves), and a joiner or a new email address is told by email through
``devices``' outbox. So the app that owns those rows registers a function here for each event, from its
``AppConfig.ready()``; :mod:`identity.directory.people` runs them inside its own transaction (but
``retire_devices``, which takes one per person), so the hooks' rows commit or roll back with the change to the
person.

The events, each called as ``hook(user, **keywords)`` (but ``retire_devices``); a hook returns a dict of counts (or
None) that joins the service's audit event:

- ``person_joined(user)``: a directory joiner was created (only when DIRECTORY_WELCOME_EMAIL is on): the welcome
  email with the enrollment address.
- ``email_changed(user, old, new)``: tell both addresses, void the links sent to the old one (DIR-06).
- ``person_deactivated(user)``: void pending links and bypass codes (DIR-02). Devices stay.
- ``person_reactivated(user)``: nothing needs undoing today; counts what the person has back.
- ``retire_devices(leavers, reason)``: ``leavers`` is a queryset of people (not one person): retire every device
  of theirs, each person locked and read through that queryset again in a transaction of their own (one reactivated
  meanwhile is no longer in it), each retirement audited; returns ``{"devices_retired": n}``.

Registering twice is harmless; an event nobody registered for does nothing (the ``devices`` app is always installed
here, and a test holds that it registered every event).
"""

from collections.abc import Callable

EVENTS = ("person_joined", "email_changed", "person_deactivated", "person_reactivated", "retire_devices")

_registry: dict[str, list[Callable]] = {event: [] for event in EVENTS}


def register(event: str, hook: Callable) -> None:
    if event not in _registry:
        raise ValueError(f"unknown directory event {event!r}; one of {', '.join(EVENTS)}")
    if hook not in _registry[event]:
        _registry[event].append(hook)


def registered(event: str) -> list[Callable]:
    return list(_registry[event])


def run(event: str, subject, **keywords) -> dict[str, int]:
    """Call every hook of ``event`` in registration order; return their counts merged (for the audit event)."""
    counts: dict[str, int] = {}
    for hook in _registry[event]:
        counts.update(hook(subject, **keywords) or {})
    return counts
