"""The desk's actions as data: what each says, who may, when it applies, its form and the service it calls.

The person page offers the actions that apply now; one admin view (``PersonAdmin.action_view``) serves them all.
"""

from collections.abc import Callable
from dataclasses import dataclass

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from devices import bypass_codes
from devices import services as device_services
from devices.models import Registration
from devices.selectors import app_to_recover
from identity import services as identity_services
from identity.models import User
from identity.selectors import same_person

from . import errors, services
from .forms import KEY_FORMS, PASSKEY, SECURITY_KEY, DeskKeyLabelForm, DeskKeyRegistrationForm
from .selectors import person_words

Outcome = services.Outcome


def device_words(registration: Registration) -> str:
    """A device as agents know it: "Work phone (Mobile phone, ***0142)"."""
    number = f", {registration.masked_phone_number}" if registration.phone_number else ""
    return f"{registration.display_name} ({registration.get_kind_display()}{number})"


def _reason_field(help_text: str = "A few words for the audit log, e.g. the ticket and what the person said."):
    return forms.CharField(label="Reason", max_length=300, help_text=help_text)


class ReasonForm(forms.Form):
    reason = _reason_field()


class DeviceForm(forms.Form):
    registration = forms.ChoiceField(label="Device")
    reason = _reason_field()

    def __init__(self, *args, person: User, **kwargs):
        super().__init__(*args, **kwargs)
        field = self.fields["registration"]
        assert isinstance(field, forms.ChoiceField)  # declared above
        field.choices = [
            (str(r.pk), device_words(r))
            for r in Registration.objects.filter(user=person, status__in=Registration.IN_USE).order_by("created_at")
        ]


class LostDeviceForm(DeviceForm):
    reason = None


class BypassCodesForm(forms.Form):
    count = forms.TypedChoiceField(
        label="How many codes",
        coerce=int,
        choices=[(n, str(n)) for n in range(1, bypass_codes.MAX_CODES + 1)],
        initial=1,
    )
    valid_minutes = forms.TypedChoiceField(
        label="Valid for",
        coerce=int,
        choices=[(m, f"{m} minutes") for m in bypass_codes.VALID_MINUTES],
        initial=15,
        widget=forms.RadioSelect,
    )


class DetailsForm(forms.Form):
    email = forms.EmailField(label="Email", required=False)
    first_name = forms.CharField(label="First name", max_length=150, required=False)
    last_name = forms.CharField(label="Last name", max_length=150, required=False)
    department = forms.CharField(label="Department", max_length=200, required=False)
    reason = _reason_field()


def _registration(person: User, registration: str) -> Registration:
    found = Registration.objects.filter(user=person, pk=registration).first()
    if found is None:
        raise ValidationError(errors.NOT_THEIR_DEVICE, code="device")
    return found


# The desk's identity check stands in for the person's own recent second factor (BND-01): the agent has just
# made sure who is asking, within IDENTITY_CHECK_VALID_MINUTES.
def _unlock(person, *, actor, identity_check, ip, requested_by, reason):
    identity_services.unlock_user(person, actor=actor, reason=reason, ip=ip)
    return Outcome("Unlocked. The person can sign in again and was told by email.")


def _retire(person, *, actor, identity_check, ip, requested_by, registration, reason):
    device_services.retire_registration(
        _registration(person, registration), actor=actor, verified_at=timezone.now(), reason=reason, ip=ip
    )
    return Outcome("The device was removed; the person was told by email.")


def _report_lost(person, *, actor, identity_check, ip, requested_by, registration):
    device_services.report_lost(_registration(person, registration), actor=actor, verified_at=timezone.now(), ip=ip)
    return Outcome("The device was reported lost and no longer works; the person was told by email.")


def _recovery_link(person, *, actor, identity_check, ip, requested_by):
    # After four-eyes the requester sends it and the agent who approved (and runs it) is the second approver.
    services.send_reactivation_link(
        person,
        actor=requested_by or actor,
        approved_by=actor if requested_by else None,
        identity_check=identity_check,
        ip=ip,
    )
    return Outcome(f"A recovery link is on its way to {person.email}.")


def _bypass(person, *, actor, identity_check, ip, requested_by, count, valid_minutes):
    codes = bypass_codes.issue_bypass_codes(person, actor=actor, count=count, valid_minutes=valid_minutes, ip=ip)
    return Outcome(f"{count} bypass code(s) issued, valid for {valid_minutes} minutes.", codes=codes)


def _sign_out(person, *, actor, identity_check, ip, requested_by, reason):
    count = services.end_sessions(person, actor=actor, reason=reason, ip=ip)
    return Outcome(f"Signed out everywhere ({count} session(s) ended); the person was told by email.")


def _approve_vpn(person, *, actor, identity_check, ip, requested_by, reason):
    identity_services.approve_vpn_access(person, actor=actor, reason=reason, ip=ip)
    return Outcome("VPN access approved; the person was told by email.")


def _revoke_vpn(person, *, actor, identity_check, ip, requested_by, reason):
    identity_services.revoke_vpn_access(person, actor=actor, reason=reason, ip=ip)
    return Outcome("VPN access ended; the person was told by email.")


def _details(person, *, actor, identity_check, ip, requested_by, reason, **values):
    services.change_person_details(person, actor=actor, reason=reason, ip=ip, **values)
    return Outcome("Details changed; the person was told by email (and at the old address, for a new email).")


def _register_key(person, *, actor, identity_check, ip, requested_by, label, credential, challenge, form=SECURITY_KEY):
    passkey = form == PASSKEY
    registration = services.register_security_key_at_desk(
        person, actor=actor, response_json=credential, challenge=challenge, label=label, ip=ip, passkey=passkey
    )
    what = "Passkey" if passkey else "Security key"
    return Outcome(f"{what} “{registration.display_name}” registered; the person was told by email.")


# What an action's filed parameters mean, in plain words, for the second agent (``DeskAction.words``); the reason
# any of them gives is added by settings_words.


def _bypass_words(params: dict, person: User) -> list[str]:
    count = params.get("count")
    return [f"{count} bypass code{'s' if count != 1 else ''}, valid for {params.get('valid_minutes')} minutes"]


def _device_words(params: dict, person: User) -> list[str]:
    registration = Registration.objects.filter(user=person, pk=params.get("registration", 0)).first()
    return [f"the device {device_words(registration)}" if registration else "a device no longer on record"]


def _recovery_words(params: dict, person: User) -> list[str]:
    return [f"emailed to {person.email or 'no address'}"]


def _key_words(params: dict, person: User) -> list[str]:
    # A key brought to the desk, or a passkey on the person's own phone or computer; left out, a key.
    words = [KEY_FORMS[params.get("form") or SECURITY_KEY]]
    return words + [f"named “{params['label']}”"] if params.get("label") else words


def _details_words(params: dict, person: User) -> list[str]:
    changes = [
        f"{str(DetailsForm.base_fields[name].label).lower()} to “{params[name]}”"
        for name in services.PERSON_FIELDS
        if params.get(name) is not None and params[name] != getattr(person, name)
    ]
    return ["change " + ", ".join(changes)] if changes else []


def _no_words(params: dict, person: User) -> list[str]:
    return []


def _has_devices(person: User) -> bool:
    return Registration.objects.filter(user=person, status__in=Registration.IN_USE).exists()


def _can_recover(person: User) -> bool:
    # What send_recovery_link refuses, read the same way: an app to replace, an address, an open account.
    return bool(person.email) and person.is_active and not person.is_locked and app_to_recover(person) is not None


@dataclass(frozen=True)
class DeskAction:
    key: str
    title: str
    phrase: str  # what it does, to follow "asks to" or "Yes,": "approve VPN access"
    permission: str  # codename in the helpdesk app
    explanation: str  # what will happen, in plain words, on the action's page
    form: type[forms.Form]
    applies: Callable[[User], bool]
    run: Callable[..., Outcome]
    # What its filed ``params`` will do, in plain words for the second agent (the reason given is added to them).
    words: Callable[[dict, User], list[str]] = _no_words
    person_form: bool = False  # the form needs the person (device choices)
    initial: Callable[[User], dict] | None = None
    # Runs in the agent's browser with the person present (a security key's touch): it cannot wait for a second
    # agent, so on a staff account the agent files it first (with ``filing_form``) and, once approved, the requester
    # runs it at the desk (helpdesk.approvals).
    live: bool = False
    filing_form: type[forms.Form] | None = None
    # Its result is read out to the caller (bypass codes), so it never runs on an identity check that is no longer
    # current, and after a second agent's approval the requester finishes it (helpdesk.approvals).
    needs_caller: bool = False

    @property
    def finished_by_requester(self) -> bool:
        """After a second agent's approval, the agent who asked runs it (with the caller, or the person at the desk)."""
        return self.needs_caller or self.live


ACTIONS = {
    action.key: action
    for action in (
        DeskAction(
            "unlock",
            "Unlock / lift setup hold",
            "unlock the account and lift any setup hold",
            "unlock_account",
            "Ends the lockout after too many wrong codes and lifts the hold on setting up a new device after the "
            "last one was reported lost. The person can then sign in (or set up a device) again.",
            ReasonForm,
            lambda p: p.locked_at is not None or p.lost_last_factor_at is not None,
            _unlock,
        ),
        DeskAction(
            "issue_bypass_codes",
            "Issue bypass codes",
            "issue bypass codes",
            "issue_bypass_codes",
            "Makes one-time codes the person can type instead of a code from a device, after their password. "
            "They work once each and stop at the time you choose; any earlier set stops now. You read them out "
            "once: they are never shown again.",
            BypassCodesForm,
            lambda p: not p.is_locked,
            _bypass,
            words=_bypass_words,
            needs_caller=True,
        ),
        DeskAction(
            "send_recovery_link",
            "Send a reactivation link",
            "send a reactivation link",
            services.RECOVERY_LINK_PERMISSION,
            "Emails the person a single-use link that, after their password, lets them set up their authenticator "
            "app on a new phone.",
            forms.Form,
            _can_recover,
            _recovery_link,
            words=_recovery_words,
        ),
        DeskAction(
            "retire_device",
            "Remove a device",
            "remove a device",
            "retire_device",
            "Removes a device the person no longer uses. It stops working at once; its history stays. The "
            "person's only working device cannot be removed this way (report it lost instead).",
            DeviceForm,
            _has_devices,
            _retire,
            words=_device_words,
            person_form=True,
        ),
        DeskAction(
            "report_lost",
            "Report a device lost",
            "report a device lost",
            "retire_device",
            "Stops a lost or stolen device at once, even the person's last one. Without another device they will "
            "need bypass codes or a recovery link to get back in.",
            LostDeviceForm,
            _has_devices,
            _report_lost,
            words=_device_words,
            person_form=True,
        ),
        DeskAction(
            "sign_out_everywhere",
            "Sign out everywhere",
            "sign them out everywhere",
            "sign_out_everywhere",
            "Ends every web session of the person; they sign in again with password and second factor.",
            ReasonForm,
            lambda p: True,
            _sign_out,
        ),
        DeskAction(
            "approve_vpn",
            "Approve VPN access",
            "approve VPN access",
            "set_vpn_access",
            "Lets the person connect to the VPN with their second factor. When the institution's directory gives "
            "VPN access through its VPN group, it is changed there, not here.",
            ReasonForm,
            lambda p: p.is_active and p.vpn_access != User.VpnAccess.APPROVED,
            _approve_vpn,
        ),
        DeskAction(
            "revoke_vpn",
            "Revoke VPN access",
            "revoke VPN access",
            "set_vpn_access",
            "Ends the person's VPN access (or turns down their request). When the institution's directory gives "
            "VPN access through its VPN group, it is changed there, not here.",
            ReasonForm,
            lambda p: p.vpn_access in (User.VpnAccess.APPROVED, User.VpnAccess.REQUESTED),
            _revoke_vpn,
        ),
        DeskAction(
            "register_security_key",
            "Register a security key",
            "register a security key",
            "register_security_key",
            "Registers the security key the person has brought, or a passkey on their own phone or computer, bound "
            "to them, with you recorded as who registered it. For a key: insert it into this computer, name it, "
            "press the button, and have the person touch the key when it blinks. For a passkey: name it, press the "
            "button, choose “use a phone or another device” if the browser asks, and have the person scan the code "
            "and unlock their phone or computer.",
            DeskKeyRegistrationForm,
            lambda p: True,
            _register_key,
            words=_key_words,
            live=True,
            filing_form=DeskKeyLabelForm,
        ),
        DeskAction(
            "change_details",
            "Change email, names or department",
            "change their email, names or department",
            "edit_person_details",
            "Changes the person's details. A new email address is told at the old one too, links sent to the old "
            "one stop working, and for a day a recovery link to the new one needs a second agent's approval. A person from the directory gets them from there: "
            "they cannot be changed here.",
            DetailsForm,
            lambda p: bool(services.editable_person_fields(p)),
            _details,
            words=_details_words,
            initial=lambda p: {f: getattr(p, f) for f in services.PERSON_FIELDS},
        ),
    )
}


def actions_for(person: User, agent: User) -> list[DeskAction]:
    """The actions that apply to ``person`` now and that ``agent`` may take (never on their own account)."""
    if same_person(agent, person):
        return []
    return [a for a in ACTIONS.values() if agent.has_perm(f"helpdesk.{a.permission}") and a.applies(person)]


def settings_words(action: str, params: dict, person: User) -> str:
    """What a filed ``action`` will do with its ``params``, in plain words, for the second agent: "1 bypass code,
    valid for 15 minutes", the device by its name, the new values of changed details (each action's ``words``),
    then the reason given."""
    desk_action = ACTIONS.get(action)
    parts = desk_action.words(params, person) if desk_action is not None else []
    if params.get("reason"):
        parts.append(f"reason given: “{params['reason']}”")
    text = "; ".join(parts)
    return text[:1].upper() + text[1:] if text else "Nothing to choose for this action."


def request_words(request) -> str:
    """Who asks what for whom, as one sentence: "Sam Lee (ID staff1) asks to issue bypass codes for Nia Ward (ID
    nurse7)."""
    action = ACTIONS.get(request.action)
    what = action.phrase if action else f"run “{request.action}”"
    return f"{person_words(request.requested_by)} asks to {what} for {person_words(request.person)}."


def after_approval_words(request) -> str:
    """What happens once a second agent approves ``request``."""
    action = ACTIONS.get(request.action)
    if action is not None and action.live:
        return (
            "Approving does not run this now: the key is touched at the desk, so "
            f"{person_words(request.requested_by)}, who asked, registers it with the person there and a current "
            "identity check."
        )
    if action is not None and action.needs_caller:
        return (
            "Approving does not run this now: it is read out to the caller, so "
            f"{person_words(request.requested_by)}, who asked, finishes it with the caller on the line and a current "
            "identity check, and only they see the result."
        )
    return (
        f"Approving runs it now, in the approver's name, with {person_words(request.requested_by)}'s identity check; "
        "the person is told by email."
    )


def filed_words(request) -> str:
    """What the requester is told once their action is filed: why, who decides where, and what happens next."""
    action = ACTIONS.get(request.action)
    if action is not None and action.live:
        then = (
            "Once it is approved, you register the key from the person's page (the request is listed on the admin "
            "home page for you), with them at the desk."
        )
    elif action is not None and action.needs_caller:
        then = (
            "Once it is approved, you finish it from the request (it is listed on the admin home page for you), with "
            "the caller on the line; only you see the result."
        )
    else:
        then = "Once it is approved it runs at once, and the person is told by email."
    expires = services.moment_words(request.expires_at)
    return (
        f"Asked a second agent to approve this ({request}). Why: {' '.join(request.reasons)} It waits for another "
        f"help-desk agent, who sees it on the admin home page and under Approval requests, until {expires}. {then}"
    )
