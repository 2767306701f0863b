"""What the web sign-in and the pages learn from the campaigns about a person without a device: registered with
``identity.setup_deadline`` (sign-in) and as a template context processor (the notice on every page)."""

from functools import cache

from django_otp import user_has_device

from identity.setup_deadline import SetupDeadline

from . import texts
from .services import effective_policy, password_alone_allowed


def setup_deadline_for(user) -> SetupDeadline | None:
    """The provider for :mod:`identity.setup_deadline`: by when this person (who has no device) must set one up.

    The web follows the doors' rule (:func:`password_alone_allowed`): while the VPN would let the person in with
    the password alone they may look around, told by when; once it would not (the deadline passed under a policy
    that requires enrollment, or a campaign requires it before its deadline) sign-in goes straight to the wizard.
    """
    policy = effective_policy(user)
    if policy is None:
        return None
    return SetupDeadline(enroll_now=not password_alone_allowed(user, policy), notice=texts.set_up_by(policy))


def setup_notice(request) -> dict:
    """``setup_notice``: "Set up two-step sign-in by <date>" for a signed-in person with no device before their
    campaigns' deadline, else "". Read only when a page shows it, and only for a session not verified with a second
    factor (an enrolled person's pages never ask)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or user.is_verified():
        # Always in the context: a missing name makes Django's template engine log the whole context at DEBUG,
        # a page's secrets included (OTP-09).
        return {"setup_notice": ""}

    @cache
    def notice() -> str:
        if user_has_device(user, confirmed=True):
            return ""
        deadline = setup_deadline_for(user)
        return deadline.notice if deadline is not None and not deadline.enroll_now else ""

    return {"setup_notice": notice}
