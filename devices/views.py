"""The enrollment wizard, activation links and "My devices". Thin: forms check shape, services change state."""

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
from django_otp import login as otp_login

from identity import session as signin_session
from identity.views import client_ip

from . import errors, kinds, selectors, services
from .forms import (
    ActivationCodeForm,
    ActivationPasswordForm,
    DeviceTypeForm,
    PhoneNumberForm,
    PlatformForm,
    RenameForm,
)
from .models import Registration

LINK_SESSION_KEY = "activation_link_token"
STEP_URLS = {
    kinds.PHONE: "devices:phone",
    kinds.PLATFORM: "devices:platform",
    kinds.INSTALL: "devices:install",
    kinds.ACTIVATE: "devices:activate",
}


def person_view(view):
    """Signed in, and verified with a second factor once the person has one; never cached."""

    @wraps(view)
    @never_cache
    @login_required
    def wrapped(request, *args, **kwargs):
        if not request.user.is_verified() and selectors.active_registration_count(request.user):
            auth.logout(request)
            return redirect("identity:sign_in")
        return view(request, *args, **kwargs)

    return wrapped


def _confirm_identity_redirect(request):
    messages.info(request, errors.REAUTH_REQUIRED)
    return redirect(reverse("identity:confirm_identity") + "?" + urlencode({"next": request.get_full_path()}))


def _own_registration(request, pk) -> Registration:
    """The person's own registration, or 404 for anyone else's (AC-01)."""
    return get_object_or_404(Registration.objects.select_related("app_device", "user"), pk=pk, user=request.user)


def _step_done(registration: Registration, step: str) -> bool:
    return {
        kinds.PHONE: bool(registration.phone_number),
        kinds.PLATFORM: bool(registration.platform),
        kinds.INSTALL: registration.app_device_id is not None,
        kinds.ACTIVATE: registration.status == Registration.Status.ACTIVE,
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
    steps = kinds.kind_of(registration).steps
    return {
        "registration": registration,
        "kind": kinds.kind_of(registration),
        "step_number": steps.index(step) + 2,  # the device-type choice is step 1
        "step_count": len(steps) + 1,
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
        },
    )


@person_view
@require_http_methods(["GET", "POST"])
def device_type(request):
    form = DeviceTypeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            registration = services.start_enrollment(
                request.user,
                kind=form.cleaned_data["kind"],
                verified_at=signin_session.verified_at(request.session),
                ip=client_ip(request),
            )
        except ValidationError as error:
            if error.code == "reauth_required":
                return _confirm_identity_redirect(request)
            form.add_error("kind", error)
        else:
            return _next_step_redirect(registration)
    chosen = form["kind"].value()
    options = [{"kind": kind, "checked": kind.key == chosen} for kind in kinds.KINDS.values()]
    return render(request, "devices/wizard/device_type.html", {"form": form, "options": options})


@person_view
@require_http_methods(["GET", "POST"])
def phone(request, pk):
    registration = _wizard_registration(request, pk, kinds.PHONE)
    if response := _finished_or_expired(request, registration):
        return response
    initial = {"phone_number": registration.phone_number} if registration.phone_number else None
    form = PhoneNumberForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            registration = services.set_phone_number(
                registration, phone_number=form.cleaned_data["phone_number"], actor=request.user, ip=client_ip(request)
            )
        except ValidationError as error:
            form.add_error(None, error)
        else:
            return _next_step_redirect(registration)
    return render(request, "devices/wizard/phone.html", _wizard_context(registration, kinds.PHONE, form=form))


@person_view
@require_http_methods(["GET", "POST"])
def platform(request, pk):
    registration = _wizard_registration(request, pk, kinds.PLATFORM)
    if response := _finished_or_expired(request, registration) or _earlier_step_missing(registration, kinds.PLATFORM):
        return response
    form = PlatformForm(request.POST or None, initial={"platform": registration.platform or None})
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
            registration = services.issue_app_secret(registration, actor=request.user, ip=client_ip(request))
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
    form = ActivationCodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            registration = services.confirm_activation(
                registration, code=form.cleaned_data["code"], actor=request.user, ip=client_ip(request)
            )
        except ValidationError as error:
            form.add_error("code", error)
        else:
            # The code just proved the device: the session counts as verified with it.
            otp_login(request, registration.app_device)
            signin_session.mark_verified(request.session)
            return redirect("devices:success", pk=registration.pk)
    context = _wizard_context(
        registration,
        kinds.ACTIVATE,
        form=form,
        manual_secret=selectors.manual_entry_secret(registration),
        has_email=bool(request.user.email),
    )
    return render(request, "devices/wizard/activate.html", context)


@person_view
@require_GET
def qr_code(request, pk):
    registration = _own_registration(request, pk)
    # An expired pending secret is never shown again (ACT-04).
    if (
        registration.status != Registration.Status.PENDING
        or registration.is_pending_expired
        or not registration.app_device_id
    ):
        raise Http404("no pending secret")
    response = HttpResponse(selectors.qr_svg(selectors.otpauth_uri(registration)), content_type="image/svg+xml")
    response["Cache-Control"] = "no-store, private"
    return response


@person_view
@require_POST
def email_activation_link(request, pk):
    registration = _own_registration(request, pk)
    try:
        services.send_activation_link(registration, actor=request.user, ip=client_ip(request))
    except ValidationError as error:
        messages.error(request, error.messages[0])
    else:
        messages.success(
            request,
            "We emailed you an activation link. Open it on the phone with the authenticator app; "
            "it works once and only for the next 24 hours.",
        )
    return redirect("devices:activate", pk=registration.pk)


@person_view
@require_GET
def success(request, pk):
    registration = _own_registration(request, pk)
    if registration.status != Registration.Status.ACTIVE:
        return _next_step_redirect(registration)
    return render(request, "devices/wizard/success.html", {"registration": registration})


def _no_referrer(response):
    response["Referrer-Policy"] = "no-referrer"
    return response


@never_cache
@require_GET
def activation_link(request, token):
    """Land from the email: move the token into the session and show a clean URL (ACT-02)."""
    request.session[LINK_SESSION_KEY] = token
    return _no_referrer(redirect("devices:activation_landing"))


@never_cache
@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def activation_landing(request):
    """Ask for the password, then show the otpauth link once (ACT-01)."""
    try:
        link = services.find_activation_link(request.session.get(LINK_SESSION_KEY, ""))
    except ValidationError as error:
        request.session.pop(LINK_SESSION_KEY, None)
        return _no_referrer(
            render(request, "devices/activation_link_invalid.html", {"error": error.messages[0]}, status=410)
        )
    form = ActivationPasswordForm(request.POST or None)
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
            context = {
                "otpauth_uri": selectors.otpauth_uri(registration),
                "manual_secret": selectors.manual_entry_secret(registration),
                "registration": registration,
            }
            return _no_referrer(render(request, "devices/activation_link_ready.html", context))
    return _no_referrer(render(request, "devices/activation_link_password.html", {"form": form, "person": link.user}))


@person_view
@require_GET
def my_devices(request):
    registrations = list(selectors.registrations_for_user(request.user))
    return render(
        request,
        "devices/my_devices.html",
        {
            "active": [r for r in registrations if r.status == Registration.Status.ACTIVE],
            "pending": [
                r for r in registrations if r.status == Registration.Status.PENDING and not r.is_pending_expired
            ],
            "retired": [r for r in registrations if r.status == Registration.Status.RETIRED],
        },
    )


@person_view
@require_http_methods(["GET", "POST"])
def rename(request, pk):
    registration = _own_registration(request, pk)
    form = RenameForm(request.POST or None, initial={"label": registration.label})
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
        try:
            services.retire_registration(
                registration,
                actor=request.user,
                verified_at=signin_session.verified_at(request.session),
                ip=client_ip(request),
            )
        except ValidationError as exc:
            if exc.code == "reauth_required":
                return _confirm_identity_redirect(request)
            error = exc.messages[0]
        else:
            messages.success(request, f"{registration.display_name} was removed. It can no longer be used to sign in.")
            return redirect("devices:my_devices")
    return render(request, "devices/remove.html", {"registration": registration, "error": error})
