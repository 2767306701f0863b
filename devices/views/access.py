"""Who may open the device pages, and what a session holds for them: the decorators every device view uses."""

from datetime import datetime
from functools import wraps

from django.contrib import auth, messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache

from identity import session as signin_session

from .. import errors, selectors, services
from ..models import Registration

LINK_SESSION_KEY = "activation_link_token_hash"


# Why the last code on the activate page was refused, shown once on the page the refusal redirects to.
CODE_ERRORS_SESSION_KEY = "activation_code_errors"


# The hold's time (``User.lost_last_factor_at``) when this session reported the person's last device lost: only
# this session may then set up a new one (BND-02).
LOSS_REPORTED_SESSION_KEY = "reported_last_factor_lost_at"


# Set when a help-desk recovery link and the password let a person in to put a new phone in place (only that).
RECOVERY_SESSION_KEY = "recovery_registration"


# The new app device of the phone change that recovery session is for: the grant covers that one change only.
RECOVERY_DEVICE_SESSION_KEY = "recovery_app_device"


def grant_recovery(request, registration: Registration) -> None:
    """Let this session finish ``registration``'s phone change under way, without a second factor, and nothing else."""
    request.session[RECOVERY_SESSION_KEY] = registration.pk
    request.session[RECOVERY_DEVICE_SESSION_KEY] = registration.pending_app_device_id


def end_recovery(request) -> None:
    request.session.pop(RECOVERY_SESSION_KEY, None)
    request.session.pop(RECOVERY_DEVICE_SESSION_KEY, None)


def recovering_registration(request) -> int | None:
    """The registration whose phone change this session may finish without a second factor, or None.

    The grant holds for the one change it was given for (its new app secret). Once that change is confirmed,
    cancelled, expired or begun again (a second recovery link opened elsewhere, say), the grant is dropped: a
    session left open on a shared computer never sees or confirms a later new secret.
    """
    pk = request.session.get(RECOVERY_SESSION_KEY)
    if pk is None:
        return None
    device_id = request.session.get(RECOVERY_DEVICE_SESSION_KEY)
    if device_id is not None and selectors.phone_change_open(
        request.user, registration_id=pk, pending_app_device_id=device_id
    ):
        return pk
    end_recovery(request)
    if not request.user.is_verified():
        messages.info(request, errors.RECOVERY_OVER)  # said on the sign-in page this session is sent to
    return None


def person_view(view):
    """Signed in, and verified with a second factor once the person has one; never cached."""

    @wraps(view)
    @never_cache
    @login_required
    def wrapped(request, *args, **kwargs):
        if not request.user.is_verified() and selectors.active_registration_count(request.user):
            if recovering := recovering_registration(request):
                # A recovery session opens only the new-phone page; keep the person there.
                return redirect("devices:reactivate", pk=recovering)
            auth.logout(request)
            return redirect("identity:sign_in")
        try:
            return view(request, *args, **kwargs)
        except services.ReauthRequired:
            return confirm_identity_redirect(request)

    return wrapped


def reactivation_view(view):
    """Like ``person_view``, but also open to a recovery session for exactly this registration."""

    @wraps(view)
    @never_cache
    @login_required
    def wrapped(request, pk, *args, **kwargs):
        recovering = recovering_registration(request) == pk
        if not recovering and not request.user.is_verified() and selectors.active_registration_count(request.user):
            auth.logout(request)
            return redirect("identity:sign_in")
        try:
            return view(request, pk, *args, recovering=recovering, **kwargs)
        except services.ReauthRequired:
            return confirm_identity_redirect(request)

    return wrapped


def confirm_identity_redirect(request):
    messages.info(request, errors.REAUTH_REQUIRED)
    return redirect(reverse("identity:confirm_identity") + "?" + urlencode({"next": request.get_full_path()}))


def second_factor_at(request):
    return signin_session.verified_at(request.session)


def needs_fresh_check(request, recovering: bool = False) -> bool:
    """True when this session may not see a pending secret now: no second factor within the last few minutes.

    Whoever sees a secret waiting for its first code holds a copy of the factor once it is bound (BND-01).
    A first enrollment is exempt, and so is a recovery session for its one phone change.
    """
    if recovering:
        return False
    try:
        services.require_recent_verification(request.user, second_factor_at(request))
    except services.ReauthRequired:
        return True
    return False


def loss_reported_here_at(request):
    stamp = request.session.get(LOSS_REPORTED_SESSION_KEY)
    return datetime.fromisoformat(stamp) if stamp else None


def own_registration(request, pk) -> Registration:
    """The person's own registration, or 404 for anyone else's (AC-01)."""
    return get_object_or_404(Registration.objects.select_related("app_device", "user"), pk=pk, user=request.user)
