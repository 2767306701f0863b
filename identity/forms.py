from django import forms


class SignInForm(forms.Form):
    username = forms.CharField(
        label="Institution ID",
        max_length=150,
        widget=forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none", "autofocus": True}),
    )
    password = forms.CharField(
        label="Password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )


class SecondFactorForm(forms.Form):
    device = forms.ChoiceField(label="Device", widget=forms.RadioSelect)
    code = forms.CharField(
        label="Code",
        help_text="From your authenticator app, or from the text or call you asked for.",
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autocapitalize": "none", "autofocus": True}),
    )

    def __init__(self, *args, devices, **kwargs):
        super().__init__(*args, **kwargs)
        # A security key signs in by touching it (a button on the page), never by a typed code.
        self.key_devices = [d for d in devices if not getattr(d, "accepts_typed_code", True)]
        devices = [d for d in devices if getattr(d, "accepts_typed_code", True)]
        self.devices = {device.persistent_id: device for device in devices}
        self.fields["device"].choices = [(pid, device.name) for pid, device in self.devices.items()]
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
