"""The enrollment wizard: choose a kind, then its steps in the order ``devices.kinds`` gives. Thin: forms check
shape, services change state."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_otp import login as otp_login

from identity import lifetimes
from identity import session as signin_session
from identity.phone_numbers import mask_phone_number
from identity.web import client_ip

from .. import errors, kinds, selectors, services
from ..forms import (
    ActivationCodeForm,
    DeviceTypeForm,
    PhoneCodeForm,
    PhoneNumberForm,
    PlatformForm,
    RenameForm,
)
from ..models import Registration
from .access import (
    CODE_ERRORS_SESSION_KEY,
    confirm_identity_redirect,
    loss_reported_here_at,
    needs_fresh_check,
    own_registration,
    person_view,
    reactivation_view,
    second_factor_at,
)


def next_step_redirect(registration: Registration):
    """To the first wizard step still to do, or to the end of the wizard when none is left."""
    return redirect(selectors.next_step_url(registration))


def wizard_registration(request, pk, step: str) -> Registration:
    """A pending registration of the person whose kind has ``step``; 404 otherwise."""
    registration = own_registration(request, pk)
    if step not in kinds.kind_of(registration).steps:
        raise Http404("no such step for this device")
    return registration


def _earlier_step_missing(registration: Registration, step: str):
    missing = kinds.next_missing_step(registration, before=step)
    return redirect(selectors.STEP_URLS[missing], pk=registration.pk) if missing else None


def wizard_context(registration: Registration, step: str, **extra) -> dict:
    kind = kinds.kind_of(registration)
    steps = kind.steps_seen(number_check=kinds.phone_check_required(registration))
    return {
        "registration": registration,
        "kind": kind,
        "step_number": steps.index(step) + 1,
        "step_count": len(steps),
        **extra,
    }


def finished_or_expired(request, registration: Registration):
    """Where a wizard page sends the person when the setup is no longer under way, or None when it is."""
    if registration.status == Registration.Status.ACTIVE:
        return redirect("devices:success", pk=registration.pk)
    if registration.status == Registration.Status.REACTIVATING:
        messages.info(request, errors.SETUP_DONE_PHONE_CHANGE_UNDER_WAY)
        return redirect("devices:reactivate", pk=registration.pk)
    if registration.status == Registration.Status.RETIRED and registration.activated_at:
        messages.info(request, errors.SETUP_DONE_DEVICE_REMOVED.format(device=registration.display_name))
        return redirect("devices:my_devices")
    if registration.status != Registration.Status.PENDING or registration.is_pending_expired:
        messages.error(request, errors.PENDING_EXPIRED)
        return redirect("devices:start")
    return None


@person_view
@require_GET
def start(request):
    pending = selectors.latest_pending_registration(request.user)
    return render(
        request,
        "devices/wizard/start.html",
        {
            "pending": pending,
            "pending_url": selectors.next_step_url(pending) if pending else "",
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
                verified_at=second_factor_at(request),
                ip=client_ip(request),
                loss_reported_here_at=loss_reported_here_at(request),
            )
        except ValidationError as error:
            form.add_error("kind", error)
        else:
            return next_step_redirect(registration)
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
    registration = wizard_registration(request, pk, kinds.PHONE)
    if response := finished_or_expired(request, registration):
        return response
    offer = selectors.directory_mobile_offer(request.user)
    # "Use this number" fills in the directory's number on our side: the page shows it masked only, so a password
    # alone never reveals it (nor does coming back to this step after taking it). The person still ticks that it is
    # correct, and proves it as a typed number.
    taken = bool(offer) and str(registration.phone_number or "") == offer
    initial = {"phone_number": registration.phone_number} if registration.phone_number and not taken else None
    if request.method == "POST":
        using_offer = bool(offer) and request.POST.get("use_directory_mobile") == "1"
    else:
        chosen = request.GET.get("use")
        using_offer = bool(offer) and (chosen == "directory" or (taken and chosen != "typed"))
    data = None
    if request.method == "POST":
        data = request.POST.copy()
        if using_offer:
            data["phone_number"] = offer
    form = PhoneNumberForm(data, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            registration = services.set_phone_number(
                registration,
                phone_number=form.cleaned_data["phone_number"],
                actor=request.user,
                verified_at=second_factor_at(request),
                ip=client_ip(request),
            )
        except ValidationError as error:
            # The number is what was refused: said beside it, and announced with it, not at the top of the form.
            form.add_error("phone_number", error)
        else:
            return next_step_redirect(registration)
    context = wizard_context(
        registration,
        kinds.PHONE,
        form=form,
        offered_number=mask_phone_number(offer) if offer else "",
        using_offer=using_offer,
    )
    return render(request, "devices/wizard/phone.html", context)


def phone_code_page(request, registration: Registration, *, template: str, context: dict):
    """Shared by the wizard's ownership check and "turn on texts and calls": send a code, then check it."""
    form = PhoneCodeForm(request.POST if request.POST.get("action") == "confirm" else None)
    if request.method == "POST" and request.POST.get("action") == "send":
        try:
            verification = services.send_phone_code(
                registration,
                channel=request.POST.get("channel", ""),
                actor=request.user,
                verified_at=second_factor_at(request),
                ip=client_ip(request),
            )
        except ValidationError as error:
            messages.error(request, error.messages[0])
        else:
            message = verification.message
            assert message is not None  # send_phone_code queues one with every code
            message.refresh_from_db()
            if message.dispatch_failed_at:
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
                verified_at=second_factor_at(request),
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
    registration = wizard_registration(request, pk, kinds.VERIFY_PHONE)
    blocked = finished_or_expired(request, registration) or _earlier_step_missing(registration, kinds.VERIFY_PHONE)
    if blocked:
        return blocked
    if kinds.step_done(registration, kinds.VERIFY_PHONE):
        return next_step_redirect(registration)
    response = phone_code_page(
        request,
        registration,
        template="devices/wizard/verify_phone.html",
        context=wizard_context(registration, kinds.VERIFY_PHONE),
    )
    if response is None:
        registration.refresh_from_db()
        if registration.status == Registration.Status.ACTIVE:
            otp_login(request, registration.phone_device)
            signin_session.mark_verified(request.session)
        return next_step_redirect(registration)
    return response


@person_view
@require_http_methods(["GET", "POST"])
def platform(request, pk):
    registration = wizard_registration(request, pk, kinds.PLATFORM)
    if response := finished_or_expired(request, registration) or _earlier_step_missing(registration, kinds.PLATFORM):
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
            form.add_error("platform", error)
        else:
            return redirect("devices:install", pk=registration.pk)
    return render(request, "devices/wizard/platform.html", wizard_context(registration, kinds.PLATFORM, form=form))


@person_view
@require_http_methods(["GET", "POST"])
def install(request, pk):
    registration = wizard_registration(request, pk, kinds.INSTALL)
    if response := finished_or_expired(request, registration) or _earlier_step_missing(registration, kinds.INSTALL):
        return response
    if request.method == "POST":
        try:
            registration = services.issue_app_secret(
                registration, actor=request.user, verified_at=second_factor_at(request), ip=client_ip(request)
            )
        except ValidationError as error:
            messages.error(request, error.messages[0])
        else:
            return redirect("devices:activate", pk=registration.pk)
    apps = kinds.PLATFORM_APPS[registration.platform]
    return render(request, "devices/wizard/install.html", wizard_context(registration, kinds.INSTALL, apps=apps))


@person_view
@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
def activate(request, pk):
    registration = wizard_registration(request, pk, kinds.ACTIVATE)
    if response := finished_or_expired(request, registration) or _earlier_step_missing(registration, kinds.ACTIVATE):
        return response
    if needs_fresh_check(request):
        return confirm_identity_redirect(request)
    form = ActivationCodeForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            registration = services.confirm_activation(
                registration,
                code=form.cleaned_data["code"],
                actor=request.user,
                verified_at=second_factor_at(request),
                ip=client_ip(request),
            )
        except ValidationError as error:
            if error.code == errors.CODE_ALREADY_BOUND:
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
    context = wizard_context(
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
    registration = own_registration(request, pk)
    # Only a secret still waiting for its first code, and never an expired one (ACT-04, ACT-06).
    awaiting = registration.awaiting_app_device
    expired = registration.is_pending_expired or (registration.is_reactivation_expired)
    if awaiting is None or awaiting.confirmed or expired or needs_fresh_check(request, recovering):
        raise Http404("no pending secret")
    response = HttpResponse(selectors.qr_svg(selectors.otpauth_uri(registration)), content_type="image/svg+xml")
    response["Cache-Control"] = "no-store, private"
    return response


@reactivation_view
@require_POST
def email_activation_link(request, pk, recovering=False):
    registration = own_registration(request, pk)
    if needs_fresh_check(request, recovering):
        return confirm_identity_redirect(request)
    try:
        link = services.send_activation_link(registration, actor=request.user, ip=client_ip(request))
    except ValidationError as error:
        messages.error(request, error.messages[0])
        if error.code == errors.CODE_EXPIRED:
            # Where the page would send the person now, without saying it twice.
            return redirect(
                "devices:my_devices" if registration.status == Registration.Status.REACTIVATING else "devices:start"
            )
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
    registration = own_registration(request, pk)
    if registration.status != Registration.Status.ACTIVE:
        return finished_or_expired(request, registration) or next_step_redirect(registration)
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
