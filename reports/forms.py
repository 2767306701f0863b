"""The reports' filters. They check the shape of input only; an invalid filter shows a message and no rows."""

from django import forms
from django.db.models import F

from campaigns.models import Campaign
from identity.directory.models import DirectorySyncRun
from identity.models import User

from .selectors import (
    ACTION_GROUP_LABELS,
    FACTOR_LABELS,
    KIND_HEADERS,
    AuditFilters,
    CampaignPeopleFilters,
    DeskFilters,
    EnrollmentFilters,
    SyncFilters,
    departments,
)

_ANY = [("", "Any")]


def filter_words(form: forms.Form) -> list[tuple[str, str]]:
    """The filters set on a valid ``form``, as a person reads them: each field's label and the chosen value's words
    (a choice's label, a campaign's name, a date), never the names the query uses."""
    words = []
    for name, field in form.fields.items():
        value = form.cleaned_data.get(name)
        if value in (None, ""):
            continue
        if isinstance(field, forms.ModelChoiceField):
            shown = field.label_from_instance(value)
        elif isinstance(field, forms.ChoiceField):
            shown = str(dict(list(field.choices)).get(value, value))  # type: ignore[arg-type]  # flat choices here
        elif hasattr(value, "isoformat"):
            shown = value.isoformat()
        else:
            shown = str(value)
        words.append((str(form[name].label), shown))
    return words


class EnrollmentFilterForm(forms.Form):
    department = forms.ChoiceField(required=False)
    vpn_access = forms.ChoiceField(label="VPN access", required=False, choices=_ANY + list(User.VpnAccess.choices))
    enrolled = forms.ChoiceField(required=False, choices=_ANY + [("yes", "Enrolled"), ("no", "Not enrolled")])
    has_kind = forms.ChoiceField(
        label="Has a device of kind", required=False, choices=_ANY + list(KIND_HEADERS.items())
    )
    strongest_factor = forms.ChoiceField(required=False, choices=_ANY + list(FACTOR_LABELS.items()))
    staff = forms.ChoiceField(
        required=False,
        choices=_ANY + [("yes", "Staff"), ("no", "Not staff")],
        help_text="Staff: help-desk agents, auditors and superusers.",
    )
    enrolled_from = forms.DateField(
        label="First enrolled from", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    enrolled_to = forms.DateField(
        label="First enrolled until", required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    last_used_before = forms.DateField(
        label="Last used before (stale)",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Enrolled people whose factors were not used since this day.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["department"].choices = _ANY + [(d, d) for d in departments()]

    def clean(self):
        data = super().clean()
        start, end = data.get("enrolled_from"), data.get("enrolled_to")
        if start and end and start > end:
            raise forms.ValidationError("“First enrolled from” must be on or before “First enrolled until”.")
        return data

    def filters(self) -> EnrollmentFilters:
        data = self.cleaned_data
        return EnrollmentFilters(
            department=data["department"],
            vpn_access=data["vpn_access"],
            enrolled={"yes": True, "no": False}.get(data["enrolled"]),
            has_kind=data["has_kind"],
            strongest_factor=data["strongest_factor"],
            staff={"yes": True, "no": False}.get(data["staff"]),
            enrolled_from=data["enrolled_from"],
            enrolled_to=data["enrolled_to"],
            last_used_before=data["last_used_before"],
        )


class DateRangeForm(forms.Form):
    start = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="Until", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["start"] > data["end"]:
            raise forms.ValidationError("“From” must be on or before “Until”.")
        return data


class AuditFilterForm(DateRangeForm):
    group = forms.ChoiceField(label="Action group", required=False, choices=_ANY + list(ACTION_GROUP_LABELS.items()))
    actor = forms.CharField(label="Actor (institution ID)", required=False, max_length=150)
    subject = forms.CharField(label="Subject (institution ID)", required=False, max_length=150)

    def filters(self) -> AuditFilters:
        data = self.cleaned_data
        return AuditFilters(
            start=data["start"],
            end=data["end"],
            group=data["group"],
            actor=data["actor"].strip(),
            subject=data["subject"].strip(),
        )


class DeskFilterForm(DateRangeForm):
    agent = forms.CharField(label="Agent (institution ID)", required=False, max_length=150)

    def filters(self) -> DeskFilters:
        data = self.cleaned_data
        return DeskFilters(start=data["start"], end=data["end"], agent=data["agent"].strip())


class SyncFilterForm(DateRangeForm):
    status = forms.ChoiceField(label="Status", required=False, choices=_ANY + list(DirectorySyncRun.Status.choices))

    def filters(self) -> SyncFilters:
        data = self.cleaned_data
        return SyncFilters(start=data["start"], end=data["end"], status=data["status"])


class CampaignChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Campaign) -> str:
        return f"{obj.name} (closed)" if obj.closed_at else obj.name


class CampaignPeopleFilterForm(forms.Form):
    # Closed campaigns too: the people a closed campaign left unenrolled are still worth a list.
    campaign = CampaignChoiceField(
        queryset=Campaign.objects.order_by(F("closed_at").desc(nulls_first=True), "name"),
        required=False,
        empty_label="Every open campaign",
    )
    department = forms.ChoiceField(required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["department"].choices = _ANY + [(d, d) for d in departments()]

    def filters(self) -> CampaignPeopleFilters:
        campaign = self.cleaned_data["campaign"]
        return CampaignPeopleFilters(
            campaign=campaign.pk if campaign else None, department=self.cleaned_data["department"]
        )
