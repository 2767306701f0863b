from django import forms
from phonenumber_field.formfields import PhoneNumberField

from . import errors
from .kinds import KINDS
from .models import Registration


class FocusFirstError:
    """After a rejected submit the first field in error takes focus, so keyboard and screen-reader users land on it."""

    def add_error(self, field, error):
        super().add_error(field, error)
        in_error = [name for name in self.fields if name in self.errors]
        for name, form_field in self.fields.items():
            form_field.widget.attrs.pop("autofocus", None)
            if in_error and name == in_error[0]:
                form_field.widget.attrs["autofocus"] = True


class DeviceTypeForm(forms.Form):
    kind = forms.ChoiceField(label="What kind of device will you use?", widget=forms.RadioSelect)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = [(kind.key, kind.label) for kind in KINDS.values()]
        self.fields["kind"].initial = Registration.Kind.MOBILE


class PhoneNumberForm(FocusFirstError, forms.Form):
    phone_number = PhoneNumberField(
        label="Phone number",
        help_text="Include the country code if the number is outside the default country, e.g. +44 20 7946 0958.",
        widget=forms.TextInput(attrs={"autocomplete": "tel", "inputmode": "tel"}),
        error_messages={
            "invalid": "That does not look like a valid phone number. Check the digits and the country code.",
            "required": "Enter the phone number of this device.",
        },
    )
    number_is_correct = forms.BooleanField(
        label="This number is correct",
        error_messages={"required": "Tick the box to confirm the number is correct."},
    )


class PlatformForm(forms.Form):
    platform = forms.ChoiceField(widget=forms.RadioSelect)

    def __init__(self, *args, kind, **kwargs):
        """``kind``: the device kind, whose words the question and the answers use ("What kind of tablet is it?")."""
        super().__init__(*args, **kwargs)
        field = self.fields["platform"]
        field.label = f"What kind of {kind.noun} is it?"
        field.choices = [(platform.value, platform.label) for platform in kind.platforms]
        field.error_messages["required"] = field.error_messages["invalid_choice"] = errors.platform_choice(kind)


class ActivationCodeForm(FocusFirstError, forms.Form):
    code = forms.CharField(
        label="Code shown in the app",
        max_length=12,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "pattern": "[0-9 ]*"}),
    )


class ActivationPasswordForm(FocusFirstError, forms.Form):
    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


class RenameForm(FocusFirstError, forms.Form):
    label = forms.CharField(
        label="Device name",
        help_text="So you can tell your devices apart, for example “Work iPad” or “Anna's phone”.",
        max_length=64,
        error_messages={"required": errors.LABEL_INVALID, "max_length": errors.LABEL_INVALID},
    )


class PhoneCodeForm(forms.Form):
    code = forms.CharField(
        label="6-digit code from the text or call",
        max_length=12,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "pattern": "[0-9 ]*"}),
    )


class SecurityKeyLabelForm(FocusFirstError, forms.Form):
    label = forms.CharField(
        label="Name this key",
        help_text="So you can tell your keys apart, for example “Blue key on my keyring”.",
        max_length=64,
        widget=forms.TextInput(attrs={"autocomplete": "off", "autofocus": True}),
        error_messages={"required": errors.KEY_LABEL_INVALID, "max_length": errors.KEY_LABEL_INVALID},
    )


class SecurityKeyAssertionForm(forms.Form):
    """The key's answer, as static/js/webauthn.js puts it into the page: JSON, at most a few kilobytes."""

    credential = forms.CharField(
        widget=forms.HiddenInput, max_length=65536, strip=False, error_messages={"required": errors.KEY_NO_RESPONSE}
    )


class SecurityKeyRegistrationForm(SecurityKeyLabelForm, SecurityKeyAssertionForm):
    pass


class PasskeyRegistrationForm(SecurityKeyRegistrationForm):
    """The same fields, in the words of a passkey on the person's own phone or computer."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["label"].label = "Name this phone or computer"
        self.fields["label"].help_text = "A name you will recognise, for example “My iPhone” or “Work laptop”."
