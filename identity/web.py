"""What other apps' views share with sign-in: the client's address, a safe "next", finishing a sign-in or a
step-up with a device that just verified. Import these from here, never from :mod:`identity.views`."""

import ipaddress

from django.conf import settings
from django.contrib import auth, messages
from django.shortcuts import redirect, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django_otp import login as otp_login

from . import session as signin_session
from .factors import SecondFactor


def client_ip(request) -> str | None:
    """The address the request came from: REMOTE_ADDR, or behind trusted proxies, what the outermost one saw.

    Each of ``TRUSTED_PROXY_COUNT`` proxies appends to X-Forwarded-For the address it received the request from;
    entries further left were written by the client and prove nothing. Per-address throttles and the audit log
    use this, so behind a proxy without it every person would share the proxy's address.
    """
    hops = settings.TRUSTED_PROXY_COUNT
    if hops:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        if len(forwarded) >= hops:
            try:
                return str(ipaddress.ip_address(forwarded[-hops]))
            except ValueError:
                pass
    return request.META.get("REMOTE_ADDR")


def safe_next(request, fallback: str) -> str:
    candidate = request.POST.get("next") or request.GET.get("next")
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return resolve_url(fallback)


def finish_sign_in(request, user, device: SecondFactor):
    """The second factor of the pending sign-in passed: sign the person in, verified with ``device``."""
    next_url = request.session.get(signin_session.NEXT_URL) or resolve_url(settings.LOGIN_REDIRECT_URL)
    backend = request.session.get(signin_session.PENDING_BACKEND)
    signin_session.clear_pending(request.session)
    auth.login(request, user, backend=backend)  # cycles the session key again (SES-01)
    otp_login(request, device)
    signin_session.mark_verified(request.session)
    if hasattr(device, "sign_in_notice"):  # e.g. a help-desk bypass code: say it is used up
        messages.info(request, device.sign_in_notice())
    return redirect(next_url)


def finish_passwordless_sign_in(request, user, device: SecondFactor, *, next_url: str):
    """A passkey with user verification signed ``user`` in alone (both factors in one): a fresh session, verified
    with ``device``. Any half-finished password sign-in in this session is dropped."""
    signin_session.clear_pending(request.session)
    if request.user.is_authenticated:
        auth.logout(request)
    # The first backend, as django.contrib.auth does for a user no backend authenticated: no password was checked.
    auth.login(request, user, backend=settings.AUTHENTICATION_BACKENDS[0])
    otp_login(request, device)
    signin_session.mark_verified(request.session)
    return redirect(next_url)


def finish_step_up(request, device: SecondFactor, *, next_url: str):
    """A fresh second factor for a signed-in person passed (BND-01): a new session key, verified now."""
    request.session.cycle_key()
    otp_login(request, device)
    signin_session.mark_verified(request.session)
    return redirect(next_url)
