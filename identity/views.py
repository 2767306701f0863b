"""Sign-in: ID and password, then a second factor from a device the person chooses.

django-two-factor-auth's LoginView assumes one "default" device and keeps no
lockout across factors, so this flow is our own; it uses django-otp for the
devices (``devices_for_user``) and for marking the session verified
(``django_otp.login``).
"""

from datetime import timedelta

from django.conf import settings
from django.contrib import auth, messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST
from django_otp import devices_for_user, user_has_device

from . import errors, lifetimes, selectors, services
from . import session as signin_session
from .directory import pace
from .directory.backends import check_password
from .forms import SecondFactorForm, SignInForm
from .models import User
from .setup_deadline import setup_deadline
from .web import client_ip, finish_sign_in, finish_step_up, safe_next


def home(request):
    if request.user.is_authenticated:
        return redirect(settings.LOGIN_REDIRECT_URL)
    return redirect("identity:sign_in")


@never_cache
@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def sign_in(request):
    next_url = safe_next(request, settings.LOGIN_REDIRECT_URL)
    if request.user.is_authenticated and request.user.is_verified():
        return redirect(next_url)
    form = SignInForm(request.POST if request.method == "POST" else None)
    if (
        request.method == "POST"
        and form.is_valid()
        and services.password_sign_in_throttled(form.cleaned_data["username"], ip=client_ip(request), by_address=True)
    ):
        wait = lifetimes.in_words(timedelta(minutes=settings.PASSWORD_THROTTLE_MINUTES))
        form.add_error(None, errors.SIGN_IN_THROTTLED.format(wait=wait))
    elif request.method == "POST" and form.is_valid():
        checked = check_password(form.cleaned_data["username"], form.cleaned_data["password"], request=request)
        user = checked.user
        if services.refuse_inactive_account(
            form.cleaned_data["username"],
            password=form.cleaned_data["password"],
            authenticated=user,
            ip=client_ip(request),
        ):
            form.add_error(None, errors.ACCOUNT_INACTIVE.format(help_desk=settings.HELP_DESK_CONTACT))
        elif user is None:
            if checked.counts_as_failure:
                known = User.objects.filter(username=form.cleaned_data["username"]).first()
                services.record_password_failure(
                    form.cleaned_data["username"], username_known_user=known, ip=client_ip(request)
                )
            # An ID nobody has was checked against nothing: its refusal waits as long as a known person's check
            # would have taken (API-04), with nothing held (the failure's audit is written and committed).
            pace.wait(checked.pace)
            form.add_error(None, checked.message)
        else:
            services.record_password_success(user, ip=client_ip(request))
            if request.user.is_authenticated:
                auth.logout(request)
            request.session.cycle_key()  # SES-01: a new key once the password is accepted
            if user_has_device(user, confirmed=True):
                signin_session.start_pending(request.session, user, next_url=next_url)
                return redirect("identity:second_factor")
            if services.setup_held(user, ip=client_ip(request)):
                # Whoever has the password (perhaps with the lost phone) must not set up a device of their own.
                form.add_error(None, errors.LAST_FACTOR_LOST.format(help_desk=settings.HELP_DESK_CONTACT))
                return render(request, "identity/sign_in.html", {"form": form, "next": next_url})
            # No device yet: signed in without a second factor, only to enroll the first one. While their campaigns
            # let the password alone in (the VPN's rule too) the person may go where they were going (every page
            # says by when); once they do not, or with no campaign, straight to the wizard.
            auth.login(request, user)
            deadline = setup_deadline(user)
            if deadline is not None and not deadline.enroll_now:
                return redirect(next_url)
            return redirect(settings.FIRST_FACTOR_SETUP_URL)
    return render(request, "identity/sign_in.html", {"form": form, "next": next_url})


def _send_challenge(request, user, devices) -> str | None:
    """Ask a device that delivers codes (text, call) for a fresh one. Returns the chosen device's id."""
    persistent_id, _, channel = request.POST["send"].partition("|")
    device = next((d for d in devices if d.persistent_id == persistent_id), None)
    if device is None or channel not in getattr(device, "challenge_channels", ()):
        messages.error(request, errors.NO_SUCH_DEVICE)
        return None
    if user.is_locked:
        messages.error(request, errors.ACCOUNT_LOCKED.format(help_desk=settings.HELP_DESK_CONTACT))
        return None
    try:
        device.generate_challenge(channel=channel, ip=client_ip(request))
    except ValidationError as error:
        messages.error(request, error.messages[0])
    else:
        how = "texted" if channel == "sms" else "are calling"
        messages.success(
            request,
            f"We {how} {device.masked_number} with a 6-digit code. "
            f"It works once, for {lifetimes.in_words(settings.PHONE_CODE_TTL)}.",
        )
    return persistent_id


CODE_SENT = "code_sent"
CHOSEN_DEVICE = "signin_chosen_device"


def _verify_form(request, user):
    """Build the device/code form and, on POST, send a code or verify one. Returns (form, outcome, device).

    After sending a code the outcome is ``CODE_SENT``: the caller redirects, so a reload cannot send another.
    """
    if request.method == "POST" and "send" in request.POST:
        devices = list(devices_for_user(user, confirmed=True))
        request.session[CHOSEN_DEVICE] = _send_challenge(request, user, devices)
        return None, CODE_SENT, None
    initial = {"device": request.session.pop(CHOSEN_DEVICE)} if request.session.get(CHOSEN_DEVICE) else None
    # A code for the device the POST names needs that device only (one query); the page, all of them.
    chosen = selectors.confirmed_device(user, request.POST.get("device")) if request.method == "POST" else None
    devices = [chosen] if chosen is not None else list(devices_for_user(user, confirmed=True))
    form = SecondFactorForm(request.POST if request.method == "POST" else None, devices=devices, initial=initial)
    if request.method != "POST" or not form.is_valid():
        if chosen is not None:
            form.offer(list(devices_for_user(user, confirmed=True)))
        return form, None, None
    device = form.chosen_device()
    outcome = services.verify_second_factor(user, device=device, code=form.cleaned_data["code"], ip=client_ip(request))
    if outcome != services.SecondFactorOutcome.OK:
        form.offer(list(devices_for_user(user, confirmed=True)))
    if outcome == services.SecondFactorOutcome.WRONG:
        # An app moved to a new phone: the old phone's codes fail, and the person should hear why.
        form.add_error("code", getattr(device, "replaced_note", "") or errors.WRONG_CODE)
    elif outcome == services.SecondFactorOutcome.THROTTLED:
        form.add_error("code", errors.code_throttled(device))
    elif outcome == services.SecondFactorOutcome.LOCKED:
        form.add_error(None, errors.ACCOUNT_LOCKED.format(help_desk=settings.HELP_DESK_CONTACT))
    return form, outcome, device


@never_cache
@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
def second_factor(request):
    user = signin_session.pending_user(request.session)
    if user is None:
        messages.error(request, errors.SIGN_IN_EXPIRED)
        return redirect("identity:sign_in")
    user = services.expire_lock_if_due(user)
    form, outcome, device = _verify_form(request, user)
    if outcome == CODE_SENT:
        return redirect(request.get_full_path())
    if outcome == services.SecondFactorOutcome.OK:
        return finish_sign_in(request, user, device)
    return render(
        request,
        "identity/second_factor.html",
        {"form": form, "person": user, "locked": user.is_locked or outcome == services.SecondFactorOutcome.LOCKED},
    )


@never_cache
@sensitive_post_parameters("code")
@login_required
@require_http_methods(["GET", "POST"])
def confirm_identity(request):
    """Step-up: a fresh second factor before binding or removing one (BND-01)."""
    next_url = safe_next(request, settings.LOGIN_REDIRECT_URL)
    if not user_has_device(request.user, confirmed=True):
        return redirect(next_url)
    form, outcome, device = _verify_form(request, request.user)
    if outcome == CODE_SENT:
        return redirect(request.get_full_path())
    if outcome == services.SecondFactorOutcome.OK:
        return finish_step_up(request, device, next_url=next_url)
    if outcome == services.SecondFactorOutcome.LOCKED:
        auth.logout(request)
        messages.error(request, errors.ACCOUNT_LOCKED.format(help_desk=settings.HELP_DESK_CONTACT))
        return redirect("identity:sign_in")
    return render(request, "identity/confirm_identity.html", {"form": form, "next": next_url})


@require_POST
def sign_out(request):
    if request.user.is_authenticated:
        services.record_sign_out(request.user, ip=client_ip(request))
    auth.logout(request)
    messages.info(request, "You are signed out.")
    return redirect("identity:sign_in")
