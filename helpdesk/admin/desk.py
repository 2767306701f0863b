"""Support cases, four-eyes requests and identity checks: read in the admin, changed only through services."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe
from django.utils.timesince import timesince
from django.views.decorators.http import require_POST

from helpdesk import approvals, services
from helpdesk.actions import ACTIONS, after_approval_words, request_words, settings_words
from helpdesk.forms import CaseNoteForm
from helpdesk.models import ApprovalRequest, Case, IdentityCheck
from identity.admin_site import site
from identity.models import AuditEvent
from identity.selectors import same_person
from identity.web import client_ip

from .registrations import ReadOnlyAdmin


def row_or_404(queryset, object_id: str, **filters):
    """The row of ``queryset`` (or a model) that ``object_id``, as a URL gives it, names; 404 for a missing row and
    for anything that is not an id at all ("abc", "²"), which the database would refuse with an error."""
    model = getattr(queryset, "model", queryset)
    try:
        pk = model._meta.pk.to_python(object_id)
    except ValidationError:
        raise Http404 from None
    return get_object_or_404(queryset, pk=pk, **filters)


class DeskAdmin(ReadOnlyAdmin):
    class Media:
        css = {"all": ("css/desk.css",)}

    def _render(self, request, template, person, **context):
        context = {**self.admin_site.each_context(request), "opts": self.opts, "person": person, **context}
        response = TemplateResponse(request, template, context)
        response["Cache-Control"] = "no-store"
        return response


@admin.register(IdentityCheck, site=site)
class IdentityCheckAdmin(DeskAdmin):
    list_display = ("created_at", "person", "agent", "method", "reference", "case")
    list_filter = ("method",)
    list_select_related = ("person", "agent", "case")
    fields = list_display
    readonly_fields = fields
    show_full_result_count = False


class QueueFilter(admin.SimpleListFilter):
    title = "queue"
    parameter_name = "queue"

    def lookups(self, request, model_admin):
        return (("mine", "My open cases"), ("unassigned", "Unassigned"))

    def queryset(self, request, queryset):
        open_ = ~Q(status=Case.Status.CLOSED)
        if self.value() == "mine":
            return queryset.filter(open_, assignee=request.user)
        if self.value() == "unassigned":
            return queryset.filter(open_, assignee=None)
        return queryset


@admin.register(Case, site=site)
class CaseAdmin(DeskAdmin):
    """The case queue (oldest first) and a case's page with its append-only notes."""

    list_display = ("__str__", "person", "category", "status", "assignee", "created_at", "updated_at")
    list_filter = (QueueFilter, "status", "category")
    list_select_related = ("person", "assignee")
    ordering = ("created_at",)
    fields = ("person", "category", "status", "assignee", "opened_by", "created_at", "updated_at")
    readonly_fields = fields
    change_form_template = "helpdesk/case.html"
    show_full_result_count = False

    def change_view(self, request, object_id, form_url="", extra_context=None):
        case = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if case is not None:
            extra.update(
                case=case,
                notes=case.notes.select_related("author"),
                checks=case.identity_checks.select_related("agent"),
                events=AuditEvent.objects.filter(details__case=case.pk).select_related("actor").order_by("sequence"),
                note_form=CaseNoteForm(initial={"status": case.status})
                if request.user.has_perm("helpdesk.work_cases") and not same_person(case.person, request.user)
                else None,
            )
        return super().change_view(request, object_id, form_url, extra)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/note/", view(require_POST(self.note_view)), name="helpdesk_case_note")
        ] + super().get_urls()

    def note_view(self, request, object_id):
        if not request.user.has_perm("helpdesk.work_cases"):
            raise PermissionDenied
        case = row_or_404(Case, object_id)
        form = CaseNoteForm(request.POST)
        if form.is_valid():
            try:
                services.add_case_note(case, actor=request.user, ip=client_ip(request), **form.cleaned_data)
            except ValidationError as error:
                self.message_user(request, " ".join(error.messages), messages.ERROR)
            else:
                self.message_user(request, "Note added.", messages.SUCCESS)
        else:
            self.message_user(request, "Write the note first.", messages.ERROR)
        return redirect(reverse("admin:helpdesk_case_change", args=[case.pk]))


class WaitingFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return (("waiting", "Waiting for approval"), ("ready", "Approved: the requester finishes it"), ("all", "All"))

    def choices(self, changelist):
        # "Waiting" is the default view: the queue.
        for lookup, title in self.lookup_choices:
            yield {
                "selected": (self.value() or "waiting") == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        state = self.value() or "waiting"
        if state in ("waiting", "ready"):
            return queryset.filter(status=state, expires_at__gt=timezone.now())
        return queryset


@admin.register(ApprovalRequest, site=site)
class ApprovalRequestAdmin(DeskAdmin):
    """The four-eyes queue (BND-08): a second agent approves or declines each request."""

    list_display = ("asked_for", "with_settings", "why", "since", "status")
    list_display_links = ("asked_for",)
    list_filter = (WaitingFilter,)
    list_select_related = ("person", "requested_by")
    # The page shows the request in sentences (helpdesk/approval_request.html), the recorded values one click away.
    fields = ()
    change_form_template = "helpdesk/approval_request.html"
    show_full_result_count = False

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"title": "Approval requests", **(extra_context or {})})

    @admin.display(description="Who asks what, for whom")
    def asked_for(self, obj):
        return request_words(obj)

    @admin.display(description="With")
    def with_settings(self, obj):
        return settings_words(obj.action, obj.params, obj.person)

    @admin.display(description="Why a second agent")
    def why(self, obj):
        return format_html_join(mark_safe("<br>"), "{}", ((reason,) for reason in obj.reasons_in_short))

    @admin.display(description="Asked", ordering="created_at")
    def since(self, obj):
        return f"{services.moment_words(obj.created_at)} ({timesince(obj.created_at)} ago)"

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if obj is not None:
            may_finish = approvals.may_finish(obj, request.user)
            extra.update(
                request_row=obj,
                title=str(obj),
                subtitle=None,
                request_words=request_words(obj),
                settings_words=settings_words(obj.action, obj.params, obj.person),
                after_approval_words=after_approval_words(obj),
                asked=f"{services.moment_words(obj.created_at)} ({timesince(obj.created_at)} ago)",
                desk_action=ACTIONS.get(obj.action),
                may_decide=approvals.may_decide(obj, request.user),
                may_finish=may_finish,
                current_check=may_finish and services.current_identity_check(obj.person, agent=request.user),
            )
        return super().change_view(request, object_id, form_url, extra)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/decide/", view(require_POST(self.decide_view)), name="helpdesk_request_decide"),
            path("<path:object_id>/finish/", view(require_POST(self.finish_view)), name="helpdesk_request_finish"),
        ] + super().get_urls()

    def decide_view(self, request, object_id):
        obj = row_or_404(ApprovalRequest, object_id)
        decision = request.POST.get("decision")
        if decision not in ("approve", "decline"):  # a post without either button changes nothing
            self.message_user(request, services.errors.DECISION_MISSING, messages.ERROR)
            return redirect(reverse("admin:helpdesk_approvalrequest_change", args=[obj.pk]))
        try:
            if decision == "approve":
                outcome = approvals.approve_request(obj, actor=request.user, ip=client_ip(request))
            else:
                approvals.decline_request(obj, actor=request.user, ip=client_ip(request))
                outcome = None
        except ValidationError as error:
            if error.code == "may_not_decide":  # approvals.may_decide: not someone who decides requests like this
                raise PermissionDenied from error
            self.message_user(request, " ".join(error.messages), messages.ERROR)
            return redirect(reverse("admin:helpdesk_approvalrequest_change", args=[obj.pk]))
        # Never codes here: an action read out to the caller waits for its requester (helpdesk.approvals).
        self.message_user(request, outcome.message if outcome else "Request declined.", messages.SUCCESS)
        return redirect(reverse("admin:helpdesk_approvalrequest_changelist"))

    def finish_view(self, request, object_id):
        """The requester finishes an approved request with the caller on the line; codes are shown here, once."""
        obj = row_or_404(ApprovalRequest.objects.select_related("person"), object_id)
        action = ACTIONS.get(obj.action)
        if action is None or not request.user.has_perm(f"helpdesk.{action.permission}"):
            raise PermissionDenied
        back = redirect(reverse("admin:helpdesk_approvalrequest_change", args=[obj.pk]))
        if not action.applies(obj.person):
            self.message_user(request, services.errors.ACTION_DOES_NOT_APPLY, messages.ERROR)
            return back
        check = services.current_identity_check(obj.person, agent=request.user)
        try:
            outcome = approvals.finish_request(obj, actor=request.user, identity_check=check, ip=client_ip(request))
        except ValidationError as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
            return back
        if outcome.codes:
            return self._render(
                request, "helpdesk/codes.html", obj.person, codes=outcome.codes, outcome=outcome, title="Bypass codes"
            )
        self.message_user(request, outcome.message, messages.SUCCESS)
        return redirect(reverse("admin:identity_user_change", args=[obj.person_id]))
