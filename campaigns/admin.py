"""Campaigns in the staff admin: created, changed and closed by staff holding ``campaigns.run_campaigns``, seen by
those with the view permission too (auditors). Every change goes through a service (audited); none is deleted."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from identity.admin_site import StaffModelAdmin, site
from identity.models import User
from identity.web import client_ip

from . import services, tasks
from .models import Campaign

RUN = "campaigns.run_campaigns"
MAX_UPLOAD_BYTES = 5 * 1024 * 1024  # 100,000 institution IDs are about 1 MB


class CampaignForm(forms.ModelForm):
    reminder_days = forms.CharField(
        required=False,
        help_text="Days before the deadline a reminder goes out, for example: 14, 7, 3, 1. Empty: no reminders.",
    )
    cohort_values = forms.CharField(
        label="Who is in it",
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="Groups or departments, one per line; or institution IDs, separated by lines, commas or spaces. "
        "Empty for everyone.",
    )
    cohort_file = forms.FileField(
        label="Or upload a list of institution IDs",
        required=False,
        help_text="A text or CSV file (the IDs in its first column or separated by lines); it replaces the list above.",
    )

    class Meta:
        model = Campaign
        fields = [name for name in services.EDITABLE if name != "reminder_days"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = User.objects.filter(is_staff=True, is_active=True)
        self.fields["owner"].help_text = "Gets the weekly summary."
        for name in ("starts_at", "deadline"):
            # The admin's date and time inputs sit under one label that points at neither: name each for screen
            # readers (axe-core's "form elements must have labels").
            date_input, time_input = getattr(self.fields[name].widget, "widgets", (None, None))
            for widget, part in ((date_input, "date"), (time_input, "time")):
                if widget is not None:
                    widget.attrs["aria-label"] = f"{self.fields[name].label}: {part}"
        if self.instance.pk:
            self.initial["reminder_days"] = ", ".join(str(d) for d in self.instance.reminder_days)
            self.initial["cohort_values"] = "\n".join(
                self.instance.cohort_entries.order_by("value").values_list("value", flat=True)
            )
        else:
            self.initial["reminder_days"] = "14, 7, 3, 1"

    def clean_reminder_days(self):
        text = self.cleaned_data["reminder_days"]
        parts = [part for part in text.replace(",", " ").split() if part]
        if not all(part.isdigit() for part in parts):
            raise ValidationError("Whole numbers of days, separated by commas: 14, 7, 3, 1.")
        return sorted((int(part) for part in parts), reverse=True)

    def clean_cohort_file(self):
        upload = self.cleaned_data.get("cohort_file")
        if upload is None:
            return None
        if upload.size > MAX_UPLOAD_BYTES:
            raise ValidationError("The file is larger than 5 MB.")
        try:
            text = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise ValidationError("The file is not UTF-8 text.") from error
        # A CSV: its first column.
        return "\n".join(line.split(",")[0] for line in text.splitlines())

    def clean(self):
        cleaned = super().clean()
        cohort = cleaned.get("cohort")
        text = cleaned.get("cohort_file") or cleaned.get("cohort_values") or ""
        if cleaned.get("cohort_file") and cohort != Campaign.Cohort.LIST:
            self.add_error("cohort_file", "An uploaded file is a list of institution IDs: choose that cohort.")
        if cohort == Campaign.Cohort.LIST:
            cleaned["values"] = services.parse_institution_ids(text)
        else:
            cleaned["values"] = services.parse_cohort_values(text)
        if self.errors:
            return cleaned
        try:
            services.check_campaign({name: cleaned.get(name) for name in services.EDITABLE}, cleaned["values"])
        except ValidationError as error:
            for field, problems in error.message_dict.items():
                self.add_error(field if field in self.fields else None, problems)
        return cleaned


@admin.register(Campaign, site=site)
class CampaignAdmin(StaffModelAdmin):
    form = CampaignForm
    list_display = (
        "name",
        "cohort",
        "starts_at",
        "deadline",
        "policy_before_deadline",
        "policy_after_deadline",
        "state",
    )
    list_filter = ("cohort", "policy_before_deadline", "policy_after_deadline")
    search_fields = ("name",)
    readonly_fields = ("created_at", "updated_at", "closed_at")
    actions = ["close_campaigns"]
    fieldsets = (
        (None, {"fields": ("name", "owner", "starts_at", "deadline")}),
        ("Who", {"fields": ("cohort", "cohort_values", "cohort_file")}),
        (
            "Policy for people not yet enrolled",
            {"fields": ("policy_before_deadline", "policy_after_deadline")},
        ),
        ("Reminders", {"fields": ("reminder_days", "time_zone", "quiet_from", "quiet_until")}),
        ("Messages", {"fields": ("email_subject", "email_text", "sms_text")}),
        ("Record", {"fields": ("created_at", "updated_at", "closed_at")}),
    )

    @admin.display(description="State")
    def state(self, obj):
        return "closed" if obj.closed_at else "open"

    def has_module_permission(self, request):
        return request.user.has_perm(RUN) or request.user.has_perm("campaigns.view_campaign")

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_add_permission(self, request):
        return request.user.has_perm(RUN)

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm(RUN) and (obj is None or obj.closed_at is None)

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not request.user.has_perm(RUN):
            actions.pop("close_campaigns", None)
        return actions

    def save_model(self, request, obj, form, change):
        fields = {name: form.cleaned_data[name] for name in services.EDITABLE}
        values, ip = form.cleaned_data["values"], client_ip(request)
        if change:
            campaign = services.change_campaign(obj, actor=request.user, ip=ip, cohort_values=values, **fields)
        else:
            campaign = services.create_campaign(actor=request.user, ip=ip, cohort_values=values, **fields)
            obj.pk = campaign.pk
        tasks.refresh_soon(campaign)

    def save_related(self, request, form, formsets, change):
        pass  # the service wrote the cohort's values

    @admin.action(description="Close the selected campaigns (they stop applying to anyone)")
    def close_campaigns(self, request, queryset):
        for campaign in queryset:
            services.close_campaign(campaign, actor=request.user, ip=client_ip(request))
        self.message_user(request, f"Closed {queryset.count()} campaign(s).", messages.SUCCESS)
