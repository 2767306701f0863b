"""Security keys and passkeys in the browser: the wizard's "name the key, touch it" step, signing in with a key
(or passkey) as the second factor, and signing in with a passkey alone from the sign-in page.

The browser side is ``static/js/webauthn.js``: it fetches the options here
(a POST, answered with JSON), calls ``navigator.credentials``, and submits the
key's answer in an ordinary form POST. The challenge's id stays in the session,
never in the page; the services check it was issued to this session.
"""

from django.conf import settings
from django.contrib import auth, messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST
from django_otp import login as otp_login

from identity import errors as identity_errors
from identity import services as identity_services
from identity import session as signin_session
from identity import staff_factor
from identity.web import client_ip, finish_passwordless_sign_in, finish_sign_in, finish_step_up, safe_next

from .. import errors, kinds
from ..forms import (
    PasskeyRegistrationForm,
    SecurityKeyAssertionForm,
    SecurityKeyLabelForm,
    SecurityKeyRegistrationForm,
)
from ..services import security_keys
from ..webauthn import SessionChallenge
from .access import person_view
from .wizard import finished_or_expired, wizard_context, wizard_registration

REGISTER_CHALLENGE = "webauthn_register_challenge"
SIGN_IN_CHALLENGE = "webauthn_sign_in_challenge"
PASSWORDLESS_CHALLENGE = "webauthn_passwordless_challenge"
STEP_UP = "confirm"


def _session_key(request) -> str:
    if not request.session.session_key:
        request.session.save()
    return request.session.session_key


def _answered_challenge(request, name: str) -> SessionChallenge:
    """The challenge this session was given; taken out of the session, so it is answered once at most."""
    return SessionChallenge(challenge_id=request.session.pop(name, None), session_key=request.session.session_key)


def _options_response(options_json: str) -> HttpResponse:
    return HttpResponse(options_json, content_type="application/json")


def _refusal(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


# --- The wizard: name the key (or passkey), touch it (or unlock it) ------------------------------


def _registration_options(request, pk, step: str):
    registration = wizard_registration(request, pk, step)
    form = SecurityKeyLabelForm(request.POST)
    if not form.is_valid():
        return _refusal(str(form.errors["label"][0]))
    try:
        options, challenge = security_keys.start_security_key_registration(
            request.user, registration=registration, session_key=_session_key(request)
        )
    except ValidationError as error:
        return _refusal(error.messages[0], status=409)
    request.session[REGISTER_CHALLENGE] = challenge.pk
    return _options_response(options)


def _registration_step(request, pk, step: str, template: str, form_class=SecurityKeyRegistrationForm):
    registration = wizard_registration(request, pk, step)
    if response := finished_or_expired(request, registration):
        return response
    form = form_class(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            registration = security_keys.register_security_key(
                request.user,
                registration=registration,
                response_json=form.cleaned_data["credential"],
                challenge=_answered_challenge(request, REGISTER_CHALLENGE),
                label=form.cleaned_data["label"],
                actor=request.user,
                verified_at=signin_session.verified_at(request.session),
                ip=client_ip(request),
                session_device=staff_factor.session_device(request.user),
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            # Touching the new key just proved it: a session verified by no device yet counts as verified with it, as
            # after an app's code. One verified with another device stays as strong as that device (WA-05): a session
            # signed in with a typed code does not become a key's by adding a key.
            if staff_factor.session_device(request.user) is None:
                otp_login(request, registration.security_key_device)
                signin_session.mark_verified(request.session)
            return redirect("devices:success", pk=registration.pk)
    return render(request, template, wizard_context(registration, step, form=form))


def _wizard_views(step: str, template: str, form_class=SecurityKeyRegistrationForm):
    """The wizard's two views for a WebAuthn kind: the options (a POST answered with JSON), and the step's page."""

    @person_view
    @require_POST
    def options_view(request, pk):
        """Options for ``navigator.credentials.create()``, once the name the person typed is acceptable."""
        return _registration_options(request, pk, step)

    @person_view
    @sensitive_post_parameters("credential")
    @require_http_methods(["GET", "POST"])
    def step_view(request, pk):
        return _registration_step(request, pk, step, template, form_class=form_class)

    return options_view, step_view


security_key_options, security_key_step = _wizard_views(kinds.SECURITY_KEY, "devices/keys/register.html")
# A passkey is asked for discoverable and with the person verified (WA-01); its page speaks of unlocking.
passkey_options, passkey_step = _wizard_views(
    kinds.PASSKEY, "devices/keys/register_passkey.html", form_class=PasskeyRegistrationForm
)


# --- Signing in (and the step-up before adding or removing a device) with a key ---------------------


def _key_user(request):
    """Whose key is asked for: the signed-in person for a step-up, else the one half-way through signing in."""
    if request.POST.get("purpose") == STEP_UP:
        return request.user if request.user.is_authenticated else None
    return signin_session.pending_user(request.session)


def _back(request) -> str:
    if request.POST.get("purpose") == STEP_UP:
        next_url = safe_next(request, settings.LOGIN_REDIRECT_URL)
        return reverse("identity:confirm_identity") + "?" + urlencode({"next": next_url})
    return reverse("identity:second_factor")


def _locked_message() -> str:
    return identity_errors.ACCOUNT_LOCKED.format(help_desk=settings.HELP_DESK_CONTACT)


@never_cache
@require_POST
def sign_in_options(request):
    """Options for ``navigator.credentials.get()``, listing the person's keys in use."""
    user = _key_user(request)
    if user is None:
        return _refusal(identity_errors.SIGN_IN_EXPIRED, status=403)
    user = identity_services.expire_lock_if_due(user)
    if user.is_locked:
        return _refusal(_locked_message(), status=403)
    try:
        options, challenge = security_keys.start_security_key_sign_in(user, session_key=_session_key(request))
    except ValidationError as error:
        return _refusal(error.messages[0], status=409)
    request.session[SIGN_IN_CHALLENGE] = challenge.pk
    return _options_response(options)


@never_cache
@sensitive_post_parameters("credential")
@require_POST
def sign_in(request):
    """Check the key's answer; on success finish the sign-in (or the step-up) as a code would."""
    user = _key_user(request)
    if user is None:
        messages.error(request, identity_errors.SIGN_IN_EXPIRED)
        return redirect("identity:sign_in")
    step_up = request.POST.get("purpose") == STEP_UP
    form = SecurityKeyAssertionForm(request.POST)
    if not form.is_valid():
        messages.error(request, errors.KEY_NO_RESPONSE)
        return redirect(_back(request))
    try:
        outcome, device = security_keys.verify_security_key(
            user,
            response_json=form.cleaned_data["credential"],
            challenge=_answered_challenge(request, SIGN_IN_CHALLENGE),
            ip=client_ip(request),
        )
    except ValidationError as error:
        messages.error(request, error.messages[0])
        return redirect(_back(request))
    if outcome == security_keys.CHALLENGE_NOT_OPEN:
        messages.error(request, errors.KEY_CHALLENGE_INVALID)
        return redirect(_back(request))
    if outcome == identity_services.SecondFactorOutcome.OK:
        if step_up:
            return finish_step_up(request, device, next_url=safe_next(request, settings.LOGIN_REDIRECT_URL))
        return finish_sign_in(request, user, device)
    if outcome == identity_services.SecondFactorOutcome.LOCKED:
        if step_up:
            auth.logout(request)
            messages.error(request, _locked_message())
            return redirect("identity:sign_in")
        # The second-factor page itself says the account is locked.
        return redirect(_back(request))
    if outcome == identity_services.SecondFactorOutcome.THROTTLED:
        messages.error(request, identity_errors.code_throttled(device))
    else:
        messages.error(request, errors.KEY_REFUSED)
    return redirect(_back(request))


# --- Passwordless: a passkey alone, from the sign-in page ----------------------------------------------


@never_cache
@require_POST
def passwordless_options(request):
    """Options for a passwordless ``navigator.credentials.get()``: no ID typed, user verification required.

    Anyone may ask, so an address past its share is answered 429 at once; for a newcomer that is before a
    session row is written, so a flood without cookies writes neither sessions nor challenges.
    """
    ip = client_ip(request)
    try:
        if not request.session.session_key:
            security_keys.passwordless_refusal(ip=ip)
        options, challenge = security_keys.start_passwordless_sign_in(session_key=_session_key(request), ip=ip)
    except ValidationError as error:
        response = _refusal(error.messages[0], status=429)
        response["Retry-After"] = str(int(settings.WEBAUTHN_CHALLENGE_TTL.total_seconds()))
        return response
    request.session[PASSWORDLESS_CHALLENGE] = challenge.pk
    return _options_response(options)


@never_cache
@sensitive_post_parameters("credential")
@require_POST
def passwordless_sign_in(request):
    """Check a passkey's answer; on success the person is fully signed in, verified with that passkey (WA-02).

    Every refusal (unknown, removed, wrong, not verified, locked, throttled) gets one answer (WA-03); the
    reason is in the audit log. The password is never asked for nor checked.
    """
    form = SecurityKeyAssertionForm(request.POST)
    if not form.is_valid():
        messages.error(request, errors.PASSKEY_NOT_ACCEPTED)
        return redirect("identity:sign_in")
    outcome, device = security_keys.sign_in_with_passkey(
        response_json=form.cleaned_data["credential"],
        challenge=_answered_challenge(request, PASSWORDLESS_CHALLENGE),
        ip=client_ip(request),
    )
    if outcome == security_keys.CHALLENGE_NOT_OPEN:
        messages.error(request, errors.KEY_CHALLENGE_INVALID)
        return redirect("identity:sign_in")
    if outcome != identity_services.SecondFactorOutcome.OK:
        messages.error(request, errors.PASSKEY_NOT_ACCEPTED)
        return redirect("identity:sign_in")
    return finish_passwordless_sign_in(
        request, device.user, device, next_url=safe_next(request, settings.LOGIN_REDIRECT_URL)
    )
