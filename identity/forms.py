from django import forms
from django.conf import settings
from django.utils.formats import date_format
from django.utils.functional import lazy
from django.utils.timezone import localtime


class SignInForm(forms.Form):
    # The page's "sign in with a passkey" part comes from the app that provides passkeys.
    passkey_template = settings.SIGN_IN_PASSKEY_TEMPLATE

    username = forms.CharField(
        label="Institution ID",
        max_length=150,
        # "webauthn": the browser may offer the person's passkeys in this field's autofill (conditional mediation).
        widget=forms.TextInput(
            attrs={"autocomplete": "username webauthn", "autocapitalize": "none", "autofocus": True}
        ),
    )
    password = forms.CharField(
        label="Password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )


# Where a typed code comes from, by factor, in the order the hint names them.
CODE_SOURCES = {
    "authenticator_app": "your authenticator app",
    "phone": "the text or call you asked for",
    "backup_code": "one of your backup codes",
}


def _label(device) -> str:
    return getattr(device, "signin_label", device.name)


def _device_choices(devices: dict) -> list[tuple[str, str]]:
    """Each device as the person named it; two with one name are told apart by the day they were added."""
    # Lazy: a label may cost a query, and a POST that signs the person in shows no page.
    labels = {pid: lazy(_label, str)(device) for pid, device in devices.items()}
    named = list(labels.values())
    for pid, device in devices.items():
        if named.count(labels[pid]) > 1 and getattr(device, "created_at", None):
            labels[pid] += f" (added {date_format(localtime(device.created_at), 'j M Y, H:i')})"
    return list(labels.items())


def _code_hint(devices) -> str:
    """Name only the sources of codes this person has."""
    factors = {getattr(device, "factor_name", "") for device in devices}
    sources = [text for factor, text in CODE_SOURCES.items() if factor in factors]
    if not sources:
        return ""
    listed = sources[0] if len(sources) == 1 else ", ".join(sources[:-1]) + " or " + sources[-1]
    return f"From {listed}."


class SecondFactorForm(forms.Form):
    # The page's "use your security key" part comes from the app that provides keys.
    key_template = settings.SIGN_IN_KEY_TEMPLATE

    device = forms.ChoiceField(label="Device", widget=forms.RadioSelect)
    code = forms.CharField(
        label="Code",
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autocapitalize": "none", "autofocus": True}),
    )

    def __init__(self, *args, devices, **kwargs):
        super().__init__(*args, **kwargs)
        self.offer(devices)

    def offer(self, devices) -> None:
        """Offer ``devices`` on the page (again, after checking a code against the one chosen)."""
        # A security key signs in by touching it (a button on the page), never by a typed code.
        self.key_devices = [d for d in devices if not getattr(d, "accepts_typed_code", True)]
        key_factors = {getattr(d, "factor_name", "") for d in self.key_devices}
        # How the page names them: "security key", "passkey", or both when the person has both.
        self.key_words = (
            " or ".join(
                words
                for factor, words in (("security_key", "security key"), ("passkey", "passkey"))
                if factor in key_factors
            )
            or "security key"
        )
        devices = [d for d in devices if getattr(d, "accepts_typed_code", True)]
        self.devices = {device.persistent_id: device for device in devices}
        device_field = self.fields["device"]
        assert isinstance(device_field, forms.ChoiceField)  # declared above
        device_field.choices = _device_choices(self.devices)
        self.fields["code"].help_text = _code_hint(self.devices.values())
        if len(self.devices) == 1:
            self.fields["device"].initial = next(iter(self.devices))
        # Devices that deliver codes on request (texts, calls) get "send me a code" buttons.
        self.challenge_devices = [d for d in self.devices.values() if getattr(d, "challenge_channels", ())]

    def clean_code(self):
        code = "".join(self.cleaned_data["code"].split())
        # Digits from an app, a text or a call; letters and dashes from a backup code.
        if not (code.isascii() and code.replace("-", "").isalnum()):
            raise forms.ValidationError("Enter the code as shown: digits, or a backup code.")
        return code

    def chosen_device(self):
        return self.devices[self.cleaned_data["device"]]
