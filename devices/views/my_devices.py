""" "My devices": rename, remove, turn on phone codes, a new phone, a lost phone, backup codes."""

from django.contrib import auth, messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_http_methods
from django_otp import DEVICE_ID_SESSION_KEY, devices_for_user
from django_otp import login as otp_login

from identity import session as signin_session
from identity import staff_factor
from identity.web import client_ip

from .. import errors, kinds, selectors, services
from ..forms import (
    ActivationCodeForm,
    RenameForm,
)
from ..models import BackupCodeDevice, BypassCodeDevice, Registration
from .access import (
    LOSS_REPORTED_SESSION_KEY,
    RECOVERY_DEVICE_SESSION_KEY,
    confirm_identity_redirect,
    end_recovery,
    grant_recovery,
    needs_fresh_check,
    own_registration,
    person_view,
    reactivation_view,
    second_factor_at,
)
from .wizard import phone_code_page


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
                {"registration": r, "continue_url": selectors.next_step_url(r)}
                for r in registrations
                if r.status == Registration.Status.PENDING and not r.is_pending_expired
            ],
            "retired": [r for r in registrations if r.status == Registration.Status.RETIRED],
            "backup": selectors.backup_code_status(request.user),
        },
    )


@person_view
@require_http_methods(["GET", "POST"])
def rename(request, pk):
    registration = own_registration(request, pk)
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
    registration = own_registration(request, pk)
    error = None
    if request.method == "POST":
        verified_with = request.session.get(DEVICE_ID_SESSION_KEY)
        with_key = staff_factor.signed_in_phishing_resistant(request.user)
        try:
            services.retire_registration(
                registration,
                actor=request.user,
                verified_at=second_factor_at(request),
                ip=client_ip(request),
                session_key=request.session.session_key,
            )
        except ValidationError as exc:
            error = exc.messages[0]
        else:
            removed = f"{registration.display_name} was removed. It can no longer be used to sign in."
            if verified_with in services.device_ids(registration) and not _stay_verified_after_removal(
                request, with_key=with_key
            ):
                auth.logout(request)
                messages.success(request, f"{removed} {errors.SIGN_IN_AGAIN_WITH_KEY}")
                return redirect("identity:sign_in")
            messages.success(request, removed)
            return redirect("devices:my_devices")
    return render(request, "devices/remove.html", {"registration": registration, "error": error})


def _stay_verified_after_removal(request, *, with_key: bool) -> bool:
    """The owner removed the device this session was verified with, just after the step-up: the session stays
    signed in (BND-05). django-otp calls a session verified only through a working device, so it is carried by
    one of the person's remaining devices from now on, keeping the time of its second factor; should that
    device be reported lost, this session ends with the others.

    ``with_key``: the removed device was phishing-resistant. The carrier is never stronger than it: a session
    verified with a typed code must not come to count as verified with a security key or passkey, which the
    staff admin and adding a staff key ask for (WA-05). Returns False, changing nothing, when only such
    devices remain; the caller then ends the session."""
    remaining = [
        device
        for device in devices_for_user(request.user, confirmed=True)
        if with_key or not staff_factor.resists_phishing(device)
    ]
    if not remaining:
        return False
    # As strong as the removed device where one is; a device of a registration before a set of codes, which is
    # replaced whenever new codes are made (or expires within the hour, for the help desk's bypass codes).
    remaining.sort(
        key=lambda device: (
            staff_factor.resists_phishing(device) != with_key,
            isinstance(device, BackupCodeDevice | BypassCodeDevice),
        )
    )
    verified_at = request.session.get(signin_session.VERIFIED_AT)
    otp_login(request, remaining[0])
    request.session[signin_session.VERIFIED_AT] = verified_at
    return True


@person_view
@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
def enable_phone_codes(request, pk):
    """My devices: turn on codes by text and call for an active mobile, after a code sent to the number."""
    registration = own_registration(request, pk)
    if registration.status != Registration.Status.ACTIVE or not kinds.kind_of(registration).phone_channels:
        raise Http404("no number to verify")
    if registration.phone_verified_at:
        messages.info(request, errors.PHONE_ALREADY_VERIFIED)
        return redirect("devices:my_devices")
    response = phone_code_page(request, registration, template="devices/enable_phone_codes.html", context={})
    if response is None:
        messages.success(request, f"Codes by text and call to {registration.masked_phone_number} are on.")
        return redirect("devices:my_devices")
    return response


@reactivation_view
@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
def reactivate(request, pk, recovering=False):
    """ "I got a new phone": a new secret, confirmed by a code from the new phone; the old works until then."""
    registration = own_registration(request, pk)
    if not kinds.kind_of(registration).has_app or registration.status not in Registration.IN_USE:
        raise Http404("nothing to reactivate")
    action = request.POST.get("action")
    form = ActivationCodeForm(request.POST if action == "confirm" else None)
    if action == "start":
        old_phone_lost = bool(request.POST.get("old_phone_lost"))
        try:
            registration = services.start_reactivation(
                registration,
                actor=request.user,
                verified_at=second_factor_at(request),
                old_phone_lost=old_phone_lost,
                ip=client_ip(request),
            )
        except ValidationError as error:
            messages.error(request, error.messages[0])
        else:
            verified_with = staff_factor.session_device(request.user)
            if old_phone_lost and verified_with is not None and verified_with == registration.app_device:
                # The session was verified with the app just retired, so it no longer counts as verified:
                # keep it open for finishing this change only, as a recovery session is, not to lock them out.
                grant_recovery(request, registration)
            if old_phone_lost:
                messages.success(request, errors.OLD_APP_STOPPED)
        return redirect("devices:reactivate", pk=registration.pk)
    if action == "cancel" and not recovering:
        registration = services.end_reactivation(
            registration, actor=request.user, reason="cancelled", ip=client_ip(request)
        )
        messages.info(request, f"Phone change cancelled. {selectors.old_phone_words(registration)}")
        return redirect("devices:my_devices")
    if action == "confirm" and form.is_valid():
        try:
            registration = services.confirm_reactivation(
                registration,
                code=form.cleaned_data["code"],
                actor=request.user,
                verified_at=second_factor_at(request),
                recovery_for=request.session.get(RECOVERY_DEVICE_SESSION_KEY) if recovering else None,
                ip=client_ip(request),
            )
        except ValidationError as error:
            registration.refresh_from_db()
            done = (
                error.code in (errors.CODE_NOT_REACTIVATING, errors.CODE_ALREADY_BOUND)
                and registration.status == Registration.Status.ACTIVE
            )
            if done and request.user.is_verified():
                return redirect("devices:my_devices")  # a second submit of a confirm that went through
            if error.code == errors.CODE_EXPIRED:
                messages.error(request, error.messages[0])
                return redirect("devices:my_devices")
            form.add_error("code", error)
        else:
            end_recovery(request)
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
        # Offered while a change is under way too: the old phone may be lost after the change began.
        "old_app_works": selectors.old_app_works(registration),
    }
    if registration.is_reactivation_expired:
        # Shown, not changed: a GET changes nothing (SES-06); the beat task or the next POST ends it.
        messages.error(request, selectors.reactivation_expired_words(registration))
        return redirect("devices:my_devices")
    if registration.status == Registration.Status.REACTIVATING:
        if needs_fresh_check(request, recovering):
            return confirm_identity_redirect(request)
        context["manual_secret"] = selectors.manual_entry_secret(registration)
    return render(request, "devices/reactivate.html", context)


@person_view
@require_http_methods(["GET", "POST"])
def report_lost(request, pk):
    """ "I lost my phone": the device stops working at once (BND-05)."""
    registration = own_registration(request, pk)
    if registration.status not in Registration.IN_USE:
        raise Http404("not in use")
    if request.method == "POST":
        verified_with = request.session.get(DEVICE_ID_SESSION_KEY)
        try:
            services.report_lost(
                registration,
                actor=request.user,
                verified_at=second_factor_at(request),
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
                verified_at=second_factor_at(request),
                replacing=request.POST.get("replaces", ""),
                ip=client_ip(request),
            )
        except ValidationError as error:
            messages.error(request, error.messages[0])
            return redirect("devices:backup_codes")
        return render(request, "devices/backup_codes_new.html", {"codes": codes})
    return render(request, "devices/backup_codes.html", selectors.backup_code_status(request.user))
