"""The enrollment wizard, activation links and "My devices". Thin: forms check shape, services change state."""

from datetime import datetime
from functools import wraps

from django.contrib import auth, messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_otp import DEVICE_ID_SESSION_KEY, devices_for_user
from django_otp import login as otp_login

from identity import lifetimes
from identity import session as signin_session
from identity.views import client_ip

from . import errors, kinds, selectors, services
from .forms import (
    ActivationCodeForm,
    ActivationPasswordForm,
    DeviceTypeForm,
    PhoneCodeForm,
    PhoneNumberForm,
    PlatformForm,
    RenameForm,
)
from .models import Registration

LINK_SESSION_KEY = "activation_link_token_hash"
# Why the last code on the activate page was refused, shown once on the page the refusal redirects to.
CODE_ERRORS_SESSION_KEY = "activation_code_errors"
# The hold's time (``User.lost_last_factor_at``) when this session reported the person's last device lost: only
# this session may then set up a new one (BND-02).
LOSS_REPORTED_SESSION_KEY = "reported_last_factor_lost_at"
# Set when a help-desk recovery link and the password let a person in to put a new phone in place (only that).
RECOVERY_SESSION_KEY = "recovery_registration"
STEP_URLS = {
    kinds.PHONE: "devices:phone",
    kinds.VERIFY_PHONE: "devices:verify_phone",
    kinds.PLATFORM: "devices:platform",
    kinds.INSTALL: "devices:install",
    kinds.ACTIVATE: "devices:activate",
    kinds.SECURITY_KEY: "devices:security_key",
}


def person_view(view):
    """Signed in, and verified with a second factor once the person has one; never cached."""

    @wraps(view)
    @never_cache
    @login_required
    def wrapped(request, *args, **kwargs):
        if not request.user.is_verified() and selectors.active_registration_count(request.user):
            if recovering := request.session.get(RECOVERY_SESSION_KEY):
                # A recovery session opens only the new-phone page; keep the person there.
                return redirect("devices:reactivate", pk=recovering)
            auth.logout(request)
            return redirect("identity:sign_in")
        try:
            return view(request, *args, **kwargs)
        except services.ReauthRequired:
            return _confirm_identity_redirect(request)

    return wrapped


def reactivation_view(view):
    """Like ``person_view``, but also open to a recovery session for exactly this registration."""

    @wraps(view)
    @never_cache
    @login_required
    def wrapped(request, pk, *args, **kwargs):
        recovering = request.session.get(RECOVERY_SESSION_KEY) == pk
        if not recovering and not request.user.is_verified() and selectors.active_registration_count(request.user):
            auth.logout(request)
            return redirect("identity:sign_in")
        try:
            return view(request, pk, *args, recovering=recovering, **kwargs)
        except services.ReauthRequired:
            return _confirm_identity_redirect(request)

    return wrapped


def _confirm_identity_redirect(request):
    messages.info(request, errors.REAUTH_REQUIRED)
    return redirect(reverse("identity:confirm_identity") + "?" + urlencode({"next": request.get_full_path()}))


def _verified_at(request):
    return signin_session.verified_at(request.session)


def _needs_fresh_check(request, recovering: bool = False) -> bool:
    """True when this session may not see a pending secret now: no second factor within the last few minutes.

    Whoever sees a secret waiting for its first code holds a copy of the factor once it is bound (BND-01).
    A first enrollment is exempt, and so is a recovery session for its one registration.
    """
    if recovering:
        return False
    try:
        services.require_recent_verification(request.user, _verified_at(request))
    except services.ReauthRequired:
        return True
    return False


def _loss_reported_here_at(request):
    stamp = request.session.get(LOSS_REPORTED_SESSION_KEY)
    return datetime.fromisoformat(stamp) if stamp else None


def _own_registration(request, pk) -> Registration:
    """The person's own registration, or 404 for anyone else's (AC-01)."""
    return get_object_or_404(Registration.objects.select_related("app_device", "user"), pk=pk, user=request.user)


def _step_done(registration: Registration, step: str) -> bool:
    return {
        kinds.PHONE: bool(registration.phone_number),
        kinds.VERIFY_PHONE: bool(registration.phone_verified_at) or not services.phone_check_required(registration),
        kinds.PLATFORM: bool(registration.platform),
        kinds.INSTALL: registration.app_device_id is not None,
        kinds.ACTIVATE: registration.status == Registration.Status.ACTIVE,
        kinds.SECURITY_KEY: registration.status == Registration.Status.ACTIVE,
    }[step]


def _next_step_redirect(registration: Registration):
    for step in kinds.kind_of(registration).steps:
        if not _step_done(registration, step):
            return redirect(STEP_URLS[step], pk=registration.pk)
    return redirect("devices:success", pk=registration.pk)


def _wizard_registration(request, pk, step: str) -> Registration:
    """A pending registration of the person whose kind has ``step``; 404 otherwise."""
    registration = _own_registration(request, pk)
    if step not in kinds.kind_of(registration).steps:
        raise Http404("no such step for this device")
    return registration


def _earlier_step_missing(registration: Registration, step: str):
    steps = kinds.kind_of(registration).steps
    for earlier in steps[: steps.index(step)]:
        if not _step_done(registration, earlier):
            return redirect(STEP_URLS[earlier], pk=registration.pk)
    return None


def _wizard_context(registration: Registration, step: str, **extra) -> dict:
    kind = kinds.kind_of(registration)
    steps = kind.steps_seen(number_check=services.phone_check_required(registration))
    return {
        "registration": registration,
        "kind": kind,
        "step_number": steps.index(step) + 1,
        "step_count": len(steps),
        **extra,
    }


def _finished_or_expired(request, registration: Registration):
    if registration.status == Registration.Status.ACTIVE:
        return redirect("devices:success", pk=registration.pk)
    if registration.status != Registration.Status.PENDING or registration.is_pending_expired:
        messages.error(request, errors.PENDING_EXPIRED)
        return redirect("devices:start")
    return None


@person_view
@require_GET
def start(request):
    return render(
        request,
        "devices/wizard/start.html",
        {
            "pending": selectors.latest_pending_registration(request.user),
            "has_devices": selectors.active_registration_count(request.user) > 0,
            # The last device was just reported lost: only this session can set up the new one.
            "held": request.user.lost_last_factor_at is not None,
        },
    )


@person_view
@require_http_methods(["GET", "POST"])
def device_type(request):
    form = DeviceTypeForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            registration = services.start_enrollment(
                request.user,
                kind=form.cleaned_data["kind"],
                verified_at=_verified_at(request),
                ip=client_ip(request),
                loss_reported_here_at=_loss_reported_here_at(request),
            )
        except ValidationError as error:
            form.add_error("kind", error)
        else:
            return _next_step_redirect(registration)
    chosen = form["kind"].value()
    # Counted for the kind now chosen (static/js/steps.js follows the choice); a number check found later adds a page.
    options = [
        {"kind": kind, "checked": kind.key == chosen, "step_count": len(kind.steps_seen(number_check=False))}
        for kind in kinds.KINDS.values()
    ]
    step_count = next((option["step_count"] for option in options if option["checked"]), None)
    return render(
        request, "devices/wizard/device_type.html", {"form": form, "options": options, "step_count": step_count}
    )


@person_view
@require_http_methods(["GET", "POST"])
def phone(request, pk):
    registration = _wizard_registration(request, pk, kinds.PHONE)
    if response := _finished_or_expired(request, registration):
        return response
    initial = {"phone_number": registration.phone_number} if registration.phone_number else None
    form = PhoneNumberForm(request.POST if request.method == "POST" else None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            registration = services.set_phone_number(
                registration,
                phone_number=form.cleaned_data["phone_number"],
                actor=request.user,
                verified_at=_verified_at(request),
                ip=client_ip(request),
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            return _next_step_redirect(registration)
    return render(request, "devices/wizard/phone.html", _wizard_context(registration, kinds.PHONE, form=form))


def _phone_code_page(request, registration: Registration, *, template: str, context: dict):
    """Shared by the wizard's ownership check and "turn on texts and calls": send a code, then check it."""
    form = PhoneCodeForm(request.POST if request.POST.get("action") == "confirm" else None)
    if request.method == "POST" and request.POST.get("action") == "send":
        try:
            verification = services.send_phone_code(
                registration,
                channel=request.POST.get("channel", ""),
                actor=request.user,
                verified_at=_verified_at(request),
                ip=client_ip(request),
            )
        except ValidationError as error:
            messages.error(request, error.messages[0])
        else:
            verification.message.refresh_from_db()
            if verification.message.dispatch_failed_at:
                messages.warning(request, errors.PHONE_SEND_DELAYED)
            else:
                how = "texted" if verification.channel == "sms" else "are calling"
                messages.success(request, f"We {how} {registration.masked_phone_number} with a 6-digit code.")
        return redirect(request.path)
    if request.method == "POST" and form.is_valid():
        try:
            registration = services.confirm_phone_code(
                registration,
                code=form.cleaned_data["code"],
                actor=request.user,
                verified_at=_verified_at(request),
                ip=client_ip(request),
            )
        except ValidationError as error:
            form.add_error("code", error)
        else:
            return None
    context.update(
        form=form,
        registration=registration,
        channels=kinds.kind_of(registration).phone_channels,
        last_message=selectors.latest_phone_message(registration),
    )
    return render(request, template, context)


@person_view
@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
def verify_phone(request, pk):
    """Wizard: prove the number by a code sent to it (always for a landline, for a mobile when on record)."""
    registration = _wizard_registration(request, pk, kinds.VERIFY_PHONE)
    blocked = _finished_or_expired(request, registration) or _earlier_step_missing(registration, kinds.VERIFY_PHONE)
    if blocked:
        return blocked
    if _step_done(registration, kinds.VERIFY_PHONE):
        return _next_step_redirect(registration)
    response = _phone_code_page(
        request,
        registration,
        template="devices/wizard/verify_phone.html",
        context=_wizard_context(registration, kinds.VERIFY_PHONE),
    )
    if response is None:
        registration.refresh_from_db()
        if registration.status == Registration.Status.ACTIVE:
            otp_login(request, registration.phone_device)
            signin_session.mark_verified(request.session)
        return _next_step_redirect(registration)
    return response


@person_view
@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
def enable_phone_codes(request, pk):
    """My devices: turn on codes by text and call for an active mobile, after a code sent to the number."""
    registration = _own_registration(request, pk)
    if registration.status != Registration.Status.ACTIVE or not kinds.kind_of(registration).phone_channels:
        raise Http404("no number to verify")
    if registration.phone_verified_at:
        messages.info(request, errors.PHONE_ALREADY_VERIFIED)
        return redirect("devices:my_devices")
    response = _phone_code_page(request, registration, template="devices/enable_phone_codes.html", context={})
    if response is None:
        messages.success(request, f"Codes by text and call to {registration.masked_phone_number} are on.")
        return redirect("devices:my_devices")
    return response


@person_view
@require_http_methods(["GET", "POST"])
def platform(request, pk):
    registration = _wizard_registration(request, pk, kinds.PLATFORM)
    if response := _finished_or_expired(request, registration) or _earlier_step_missing(registration, kinds.PLATFORM):
        return response
    form = PlatformForm(
        request.POST if request.method == "POST" else None,
        initial={"platform": registration.platform or None},
        kind=kinds.kind_of(registration),
    )
    if request.method == "POST" and form.is_valid():
        try:
            registration = services.set_platform(
                registration, platform=form.cleaned_data["platform"], actor=request.user
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            return redirect("devices:install", pk=registration.pk)
    return render(request, "devices/wizard/platform.html", _wizard_context(registration, kinds.PLATFORM, form=form))


@person_view
@require_http_methods(["GET", "POST"])
def install(request, pk):
    registration = _wizard_registration(request, pk, kinds.INSTALL)
    if response := _finished_or_expired(request, registration) or _earlier_step_missing(registration, kinds.INSTALL):
        return response
    if request.method == "POST":
        try:
            registration = services.issue_app_secret(
                registration, actor=request.user, verified_at=_verified_at(request), ip=client_ip(request)
            )
        except ValidationError as error:
            messages.error(request, error.messages[0])
        else:
            return redirect("devices:activate", pk=registration.pk)
    apps = kinds.PLATFORM_APPS[registration.platform]
    return render(request, "devices/wizard/install.html", _wizard_context(registration, kinds.INSTALL, apps=apps))


@person_view
@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
def activate(request, pk):
    registration = _wizard_registration(request, pk, kinds.ACTIVATE)
    if response := _finished_or_expired(request, registration) or _earlier_step_missing(registration, kinds.ACTIVATE):
        return response
    if _needs_fresh_check(request):
        return _confirm_identity_redirect(request)
    form = ActivationCodeForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            registration = services.confirm_activation(
                registration,
                code=form.cleaned_data["code"],
                actor=request.user,
                verified_at=_verified_at(request),
                ip=client_ip(request),
            )
        except ValidationError as error:
            if error.code == "already_bound":
                # A double submit: the other request bound it (and verified its session, if it was this one).
                return redirect("devices:success", pk=registration.pk)
            form.add_error("code", error)
        else:
            # The code just proved the device: the session counts as verified with it.
            otp_login(request, registration.app_device)
            signin_session.mark_verified(request.session)
            return redirect("devices:success", pk=registration.pk)
    if request.method == "POST":
        # Post/redirect/get for a refusal too: Back or reload after a wrong code never resubmits the form.
        request.session[CODE_ERRORS_SESSION_KEY] = list(form.errors.get("code", []))
        return redirect(request.path)
    if refused := request.session.pop(CODE_ERRORS_SESSION_KEY, None):
        form.cleaned_data = {}  # an unbound form keeps no cleaned data, which add_error expects
        form.add_error("code", refused)
    context = _wizard_context(
        registration,
        kinds.ACTIVATE,
        form=form,
        manual_secret=selectors.manual_entry_secret(registration),
        has_email=bool(request.user.email),
    )
    return render(request, "devices/wizard/activate.html", context)


@reactivation_view
@require_GET
def qr_code(request, pk, recovering=False):
    registration = _own_registration(request, pk)
    # Only a secret still waiting for its first code, and never an expired one (ACT-04, ACT-06).
    awaiting = registration.awaiting_app_device
    expired = registration.is_pending_expired or (registration.is_reactivation_expired)
    if awaiting is None or awaiting.confirmed or expired or _needs_fresh_check(request, recovering):
        raise Http404("no pending secret")
    response = HttpResponse(selectors.qr_svg(selectors.otpauth_uri(registration)), content_type="image/svg+xml")
    response["Cache-Control"] = "no-store, private"
    return response


@reactivation_view
@require_POST
def email_activation_link(request, pk, recovering=False):
    registration = _own_registration(request, pk)
    if _needs_fresh_check(request, recovering):
        return _confirm_identity_redirect(request)
    try:
        link = services.send_activation_link(registration, actor=request.user, ip=client_ip(request))
    except ValidationError as error:
        messages.error(request, error.messages[0])
    else:
        messages.success(
            request,
            "We emailed you an activation link. Open it on the phone with the authenticator app; "
            f"it works once and only for the next {lifetimes.in_words(link.expires_at - link.created_at)}.",
        )
    if registration.status == Registration.Status.REACTIVATING:
        return redirect("devices:reactivate", pk=registration.pk)
    return redirect("devices:activate", pk=registration.pk)


@person_view
@require_http_methods(["GET", "POST"])
def success(request, pk):
    """The end of the wizard: the device works; the person names it (a distinct default is filled in)."""
    registration = _own_registration(request, pk)
    if registration.status != Registration.Status.ACTIVE:
        return _next_step_redirect(registration)
    form = RenameForm(request.POST if request.method == "POST" else None, initial={"label": registration.label})
    if request.method == "POST" and form.is_valid():
        try:
            registration = services.rename_registration(
                registration, label=form.cleaned_data["label"], actor=request.user, ip=client_ip(request)
            )
        except ValidationError as error:
            form.add_error("label", error)
        else:
            messages.success(request, f"Saved: this device is called “{registration.display_name}”.")
            return redirect("devices:my_devices")
    return render(
        request,
        "devices/wizard/success.html",
        {"registration": registration, "offer_phone_codes": selectors.offers_phone_codes(registration), "form": form},
    )


def _no_referrer(response):
    response["Referrer-Policy"] = "no-referrer"
    return response


@never_cache
@require_GET
def activation_link(request, token):
    """A link with the token in its path, as emails sent before links moved it after "#" have it: keep the
    token's hash in the session and show a clean URL (ACT-02).

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
            if error.code in ("invalid", "revoked"):
                request.session.pop(LINK_SESSION_KEY, None)
            form.add_error("password", error)
        else:
            request.session.pop(LINK_SESSION_KEY, None)
            registration = link.registration
            if link.purpose == link.Purpose.RECOVERY:
                # The help desk's identity check, the link and the password stand in for the lost factor,
                # for this one purpose: putting a new phone in place of the old one.
                auth.login(request, link.user, backend="django.contrib.auth.backends.ModelBackend")
                request.session[RECOVERY_SESSION_KEY] = registration.pk
                return redirect("devices:reactivate", pk=registration.pk)
            context = {
                "otpauth_uri": selectors.otpauth_uri(registration),
                "manual_secret": selectors.manual_entry_secret(registration),
                "registration": registration,
            }
            return render(request, "devices/activation_link_ready.html", context)
    return render(request, "devices/activation_link_password.html", {"form": form, "person": link.user})


@person_view
@require_GET
def my_devices(request):
    registrations = list(selectors.registrations_for_user(request.user))
    return render(
        request,
        "devices/my_devices.html",
        {
            "active": [
                {"registration": r, "offer_phone_codes": selectors.offers_phone_codes(r)}
                for r in registrations
                if r.status in Registration.IN_USE
            ],
            "pending": [
                r for r in registrations if r.status == Registration.Status.PENDING and not r.is_pending_expired
            ],
            "retired": [r for r in registrations if r.status == Registration.Status.RETIRED],
            "backup": selectors.backup_code_status(request.user),
        },
    )


@person_view
@require_http_methods(["GET", "POST"])
def rename(request, pk):
    registration = _own_registration(request, pk)
    form = RenameForm(request.POST if request.method == "POST" else None, initial={"label": registration.label})
    if request.method == "POST" and form.is_valid():
        try:
            services.rename_registration(
                registration, label=form.cleaned_data["label"], actor=request.user, ip=client_ip(request)
            )
        except ValidationError as error:
            form.add_error("label", error)
        else:
            messages.success(request, "Device renamed.")
            return redirect("devices:my_devices")
    return render(request, "devices/rename.html", {"form": form, "registration": registration})


@person_view
@require_http_methods(["GET", "POST"])
def remove(request, pk):
    registration = _own_registration(request, pk)
    error = None
    if request.method == "POST":
        verified_with = request.session.get(DEVICE_ID_SESSION_KEY)
        try:
            services.retire_registration(
                registration,
                actor=request.user,
                verified_at=_verified_at(request),
                ip=client_ip(request),
                session_key=request.session.session_key,
            )
        except ValidationError as exc:
            error = exc.messages[0]
        else:
            if verified_with in services.device_ids(registration):
                _stay_verified_after_removal(request)
            messages.success(request, f"{registration.display_name} was removed. It can no longer be used to sign in.")
            return redirect("devices:my_devices")
    return render(request, "devices/remove.html", {"registration": registration, "error": error})


def _stay_verified_after_removal(request) -> None:
    """The owner removed the device this session was verified with, just after the step-up: the session stays
    signed in (BND-05). django-otp calls a session verified only through a working device, so it is carried by
    one of the person's remaining devices from now on, keeping the time of its second factor; should that
    device be reported lost, this session ends with the others."""
    remaining = list(devices_for_user(request.user, confirmed=True))
    # A device of a registration before backup codes, whose set is replaced whenever new codes are made.
    remaining.sort(key=lambda device: device.model_label() == "devices.backupcodedevice")
    verified_at = request.session.get(signin_session.VERIFIED_AT)
    otp_login(request, remaining[0])
    request.session[signin_session.VERIFIED_AT] = verified_at


@reactivation_view
@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
def reactivate(request, pk, recovering=False):
    """ "I got a new phone": a new secret, confirmed by a code from the new phone; the old works until then."""
    registration = _own_registration(request, pk)
    if not kinds.kind_of(registration).has_app or registration.status not in Registration.IN_USE:
        raise Http404("nothing to reactivate")
    action = request.POST.get("action")
    form = ActivationCodeForm(request.POST if action == "confirm" else None)
    if action == "start":
        old_phone_lost = bool(request.POST.get("old_phone_lost"))
        try:
            services.start_reactivation(
                registration,
                actor=request.user,
                verified_at=_verified_at(request),
                old_phone_lost=old_phone_lost,
                ip=client_ip(request),
            )
        except ValidationError as error:
            messages.error(request, error.messages[0])
        else:
            verified_with = getattr(request.user, "otp_device", None)
            if old_phone_lost and verified_with is not None and verified_with == registration.app_device:
                # The session was verified with the app just retired, so it no longer counts as verified:
                # keep it open for finishing this change only, as a recovery session is, not to lock them out.
                request.session[RECOVERY_SESSION_KEY] = registration.pk
        return redirect("devices:reactivate", pk=registration.pk)
    if action == "cancel" and not recovering:
        services.end_reactivation(registration, actor=request.user, reason="cancelled", ip=client_ip(request))
        messages.info(request, "Phone change cancelled. Your old phone still works.")
        return redirect("devices:my_devices")
    if action == "confirm" and form.is_valid():
        try:
            registration = services.confirm_reactivation(
                registration,
                code=form.cleaned_data["code"],
                actor=request.user,
                verified_at=_verified_at(request),
                recovering=recovering,
                ip=client_ip(request),
            )
        except ValidationError as error:
            registration.refresh_from_db()
            done = (
                error.code in ("not_reactivating", "already_bound")
                and registration.status == Registration.Status.ACTIVE
            )
            if done and request.user.is_verified():
                return redirect("devices:my_devices")  # a second submit of a confirm that went through
            if error.code == "expired":
                messages.error(request, error.messages[0])
                return redirect("devices:my_devices")
            form.add_error("code", error)
        else:
            request.session.pop(RECOVERY_SESSION_KEY, None)
            otp_login(request, registration.app_device)
            signin_session.mark_verified(request.session)
            messages.success(request, f"{registration.display_name} now uses the app on your new phone.")
            return redirect("devices:my_devices")
    registration.refresh_from_db()
    context = {
        "registration": registration,
        "form": form,
        "recovering": recovering,
        "has_email": bool(request.user.email),
    }
    if registration.is_reactivation_expired:
        # Shown, not changed: a GET changes nothing (SES-06); the beat task or the next POST ends it.
        messages.error(request, errors.REACTIVATION_EXPIRED)
        return redirect("devices:my_devices")
    if registration.status == Registration.Status.REACTIVATING:
        if _needs_fresh_check(request, recovering):
            return _confirm_identity_redirect(request)
        context["manual_secret"] = selectors.manual_entry_secret(registration)
    return render(request, "devices/reactivate.html", context)


@person_view
@require_http_methods(["GET", "POST"])
def report_lost(request, pk):
    """ "I lost my phone": the device stops working at once (BND-05)."""
    registration = _own_registration(request, pk)
    if registration.status not in Registration.IN_USE:
        raise Http404("not in use")
    if request.method == "POST":
        verified_with = request.session.get(DEVICE_ID_SESSION_KEY)
        try:
            services.report_lost(
                registration,
                actor=request.user,
                verified_at=_verified_at(request),
                ip=client_ip(request),
                session_key=request.session.session_key,
            )
        except ValidationError as error:
            messages.error(request, error.messages[0])
            return redirect("devices:my_devices")
        request.user.refresh_from_db(fields=["lost_last_factor_at"])
        held_since = request.user.lost_last_factor_at
        if held_since and not any(devices_for_user(request.user, confirmed=True)):
            # The last factor is gone and every other session ended: this one may set up the new device.
            request.session[LOSS_REPORTED_SESSION_KEY] = held_since.isoformat()
            messages.success(request, f"{registration.display_name} can no longer be used to sign in.")
            return redirect("devices:start")
        if verified_with in services.device_ids(registration):
            # Verified with the lost device: this session ends with the others (BND-05).
            auth.logout(request)
            messages.success(
                request,
                f"{registration.display_name} can no longer be used to sign in. Sign in again with another device.",
            )
            return redirect("identity:sign_in")
        messages.success(request, f"{registration.display_name} can no longer be used to sign in.")
        return redirect("devices:my_devices")
    return render(request, "devices/report_lost.html", {"registration": registration})


@person_view
@require_http_methods(["GET", "POST"])
def backup_codes(request):
    """Backup codes: generate a set (shown once, never again) and see how many are left (BND-06)."""
    if request.method == "POST":
        try:
            codes = services.generate_backup_codes(
                request.user,
                actor=request.user,
                verified_at=_verified_at(request),
                ip=client_ip(request),
            )
        except ValidationError as error:
            messages.error(request, error.messages[0])
            return redirect("devices:backup_codes")
        return render(request, "devices/backup_codes_new.html", {"codes": codes})
    return render(request, "devices/backup_codes.html", selectors.backup_code_status(request.user))
