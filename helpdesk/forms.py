from django import forms

from devices.forms import SecurityKeyAssertionForm, SecurityKeyLabelForm

from .models import Case, IdentityCheck

SECURITY_KEY, PASSKEY = "security_key", "passkey"
# What the desk may register, in the words its form and the four-eyes request use.
KEY_FORMS = {
    SECURITY_KEY: "A security key they brought (touched when it blinks)",
    PASSKEY: "A passkey on their own phone or computer (unlocked with face, fingerprint or screen lock)",
}
# What the desk's confirm button says for each, after "Yes,".
KEY_PHRASES = {SECURITY_KEY: "register a security key", PASSKEY: "register a passkey"}


def case_field(person) -> forms.ModelChoiceField:
    return forms.ModelChoiceField(
        label="Case",
        required=False,
        empty_label="No case",
        queryset=Case.objects.filter(person=person).exclude(status=Case.Status.CLOSED),
        help_text="The support case this belongs to, if any.",
    )


class IdentityCheckForm(forms.Form):
    method = forms.ChoiceField(
        label="How did you check who is calling?",
        choices=IdentityCheck.Method.choices,
        widget=forms.RadioSelect,
        help_text="Knowledge questions (date of birth, address) are not enough.",
    )
    reference = forms.CharField(label="Ticket or case reference", max_length=100)

    def __init__(self, *args, person, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["case"] = case_field(person)


class CaseForm(forms.Form):
    category = forms.ChoiceField(label="What is it about?", choices=Case.Category.choices)
    note = forms.CharField(label="First note", widget=forms.Textarea(attrs={"rows": 4}), required=False)
    # The newest case opened for the person when the page was shown (helpdesk.services.open_case).
    seen = forms.IntegerField(widget=forms.HiddenInput, min_value=0, required=False)


class CaseNoteForm(forms.Form):
    text = forms.CharField(label="Add a note", widget=forms.Textarea(attrs={"rows": 4}))
    status = forms.ChoiceField(label="Status", choices=Case.Status.choices)


class DeskKeyLabelForm(SecurityKeyLabelForm):
    """What the desk registers: a key the person brought, or a passkey on the phone or computer they brought.

    Left out, it is a security key (the desk's only choice before passkeys)."""

    form = forms.ChoiceField(
        label="What does the person register?",
        choices=list(KEY_FORMS.items()),
        initial=SECURITY_KEY,
        required=False,
        widget=forms.RadioSelect,
    )

    def clean_form(self) -> str:
        return self.cleaned_data.get("form") or SECURITY_KEY


class DeskKeyRegistrationForm(DeskKeyLabelForm, SecurityKeyAssertionForm):
    pass
