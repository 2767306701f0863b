"""The directory's sync runs (read-only), "Sync now" for superusers, and a held run's Apply / Discard (DIR-03)."""

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Page
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from helpdesk.actions import person_words
from identity.admin_site import site
from identity.directory import background, selectors, sync
from identity.directory.models import DirectorySyncRun

from .registrations import ReadOnlyAdmin


def _leaving_in_words(run: DirectorySyncRun, number: str | None) -> Page:
    """One page of who a held run would deactivate, as the page names them: name, ID and department, and why."""
    page = selectors.leaving_page(run, number)
    page.object_list = [
        {
            "id": leaving.id,
            "reason": leaving.reason,
            "words": person_words(leaving.person) if leaving.person else leaving.username,
            "department": leaving.person.department if leaving.person else "",
        }
        for leaving in page.object_list
    ]
    return page


@admin.register(DirectorySyncRun, site=site)
class DirectorySyncRunAdmin(ReadOnlyAdmin):
    list_display = (
        "started_at",
        "status",
        "dry_run",
        "only_person",
        "trigger",
        "triggered_by",
        "read",
        "created",
        "updated",
        "deactivated",
        "reactivated",
        "unchanged",
        "errors",
    )
    list_filter = ("status", "trigger", "dry_run")
    list_select_related = ("triggered_by",)
    date_hierarchy = "started_at"
    fields = (
        ("started_at", "finished_at"),
        ("status", "dry_run", "only_person"),
        ("trigger", "triggered_by"),
        ("read", "created", "updated", "deactivated", "reactivated", "unchanged", "errors"),
        "error_text",
        ("decided_by", "decided_at"),
    )
    readonly_fields = [name for row in fields for name in (row if isinstance(row, tuple) else (row,))]
    change_list_template = "helpdesk/sync_runs.html"
    change_form_template = "helpdesk/sync_run.html"

    def changelist_view(self, request, extra_context=None):
        can_sync = request.user.is_superuser and bool(settings.LDAP_SERVER_URIS)
        return super().changelist_view(request, {**(extra_context or {}), "can_sync": can_sync})

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        decide = run is not None and request.user.is_superuser and run.status == run.Status.HELD and not run.dry_run
        extra = {"run": run, "can_decide": decide}
        if run is not None and run.status == run.Status.HELD:
            extra["leaving"] = _leaving_in_words(run, request.GET.get("page"))
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), **extra})

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("sync-now/", view(require_POST(self.sync_now_view)), name="directory_sync_now"),
            path("<int:run_id>/decide/", view(require_POST(self.decide_view)), name="directory_sync_decide"),
        ] + super().get_urls()

    def sync_now_view(self, request):
        try:
            background.request_sync(actor=request.user)
        except background.SyncNotQueued as error:
            self.message_user(request, " ".join(error.messages), messages.ERROR)
            return redirect(reverse("admin:directory_directorysyncrun_changelist"))
        except ValidationError as error:
            raise PermissionDenied from error
        self.message_user(
            request,
            "A sync of everyone was queued: its run appears in this list when the worker starts it. If another run is "
            "still going, it is not run, and the audit log says so.",
            messages.SUCCESS,
        )
        return redirect(reverse("admin:directory_directorysyncrun_changelist"))

    def decide_view(self, request, run_id):
        run = get_object_or_404(DirectorySyncRun, pk=run_id)
        decision = request.POST.get("decision")
        if decision not in ("apply", "discard"):
            self.message_user(
                request, "Nothing was decided: choose Apply or Discard. The run is as it was.", messages.ERROR
            )
            return redirect(reverse("admin:directory_directorysyncrun_change", args=[run.pk]))
        apply = decision == "apply"
        try:
            if apply:
                background.request_apply(run, actor=request.user)
            else:
                run = sync.discard_held_run(run, actor=request.user)
        except ValidationError as error:
            self.message_user(request, "; ".join(error.messages), messages.ERROR)
        else:
            done = "Applying this run was queued: the worker reads the directory again and applies it, and this page shows the outcome."
            self.message_user(request, done if apply else f"{run}.", messages.SUCCESS)
        return redirect(reverse("admin:directory_directorysyncrun_change", args=[run.pk]))
