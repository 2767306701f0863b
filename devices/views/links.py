"""Opening an emailed activation or recovery link (ACT-01, ACT-02, OTP-09)."""

from django.conf import settings
from django.contrib import auth
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods

from identity.web import client_ip

from .. import errors, selectors, services
from ..forms import (
    ActivationPasswordForm,
)
from .access import LINK_SESSION_KEY, grant_recovery


def _no_referrer(response):
    response["Referrer-Policy"] = "no-referrer"
    return response


@never_cache
@require_GET
def activation_link(request, token):
    """A link with the token in its path rather than after "#" (the emails put it after "#"): keep the token's
    hash in the session and show a clean URL (ACT-02).

    The token itself, which opens the link from any browser, is not written to the session store.
    """
    request.session[LINK_SESSION_KEY] = services.hash_token(token)
    return _no_referrer(redirect("devices:activation_landing"))


@never_cache
@sensitive_post_parameters("password", "token")
@require_http_methods(["GET", "POST"])
def activation_landing(request):
    """Take the emailed link's token, ask for the password, then show the otpauth link once (ACT-01).

    The email's link is this URL with the token after "#" (OTP-09): the page's script posts it here, and the
    token's hash goes into the session with a redirect to this clean URL (ACT-02). These pages keep the site's
    ``same-origin`` referrer policy: under ``no-referrer`` Chromium posts a form with ``Origin: null``, which
    the CSRF check refuses.
    """
    if request.method == "POST" and "token" in request.POST:
        request.session[LINK_SESSION_KEY] = services.hash_token(request.POST["token"])
        return redirect("devices:activation_landing")
    if request.method == "GET" and LINK_SESSION_KEY not in request.session:
        return render(request, "devices/activation_link_open.html")
    try:
        link = services.find_activation_link(request.session.get(LINK_SESSION_KEY, ""))
    except ValidationError as error:
        request.session.pop(LINK_SESSION_KEY, None)
        return render(request, "devices/activation_link_invalid.html", {"error": error.messages[0]}, status=410)
    form = ActivationPasswordForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            link = services.open_activation_link(link, password=form.cleaned_data["password"], ip=client_ip(request))
        except ValidationError as error:
            if error.code in (errors.CODE_LINK_INVALID, errors.CODE_LINK_REVOKED):
                request.session.pop(LINK_SESSION_KEY, None)
            form.add_error("password", error)
        else:
            request.session.pop(LINK_SESSION_KEY, None)
            registration = link.registration
            if link.purpose == link.Purpose.RECOVERY:
                # The help desk's identity check, the link and the password stand in for the lost factor,
                # for this one purpose: putting a new phone in place of the old one.
                auth.login(request, link.user, backend=settings.AUTHENTICATION_BACKENDS[0])
                grant_recovery(request, registration)
                return redirect("devices:reactivate", pk=registration.pk)
            context = {
                "otpauth_uri": selectors.otpauth_uri(registration),
                "manual_secret": selectors.manual_entry_secret(registration),
                "registration": registration,
            }
            return render(request, "devices/activation_link_ready.html", context)
    return render(request, "devices/activation_link_password.html", {"form": form, "person": link.user})
