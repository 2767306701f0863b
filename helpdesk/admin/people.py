"""The people list (find the caller) and the person page with the desk's actions.

Nothing of a person is edited here: every change is a desk action through ``helpdesk.runner`` (AC-04).
"""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import BooleanField, Count, ExpressionWrapper, IntegerField, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from devices.bypass_codes import current_bypass_codes
from devices.selectors import working_registrations
from devices.services import security_keys
from devices.webauthn import SessionChallenge
from helpdesk import approvals, runner, selectors, services
from helpdesk.actions import ACTIONS, actions_for, filed_words, person_words
from helpdesk.forms import KEY_PHRASES, PASSKEY, SECURITY_KEY, CaseForm, DeskKeyLabelForm, IdentityCheckForm, case_field
from identity.admin_site import site
from identity.directory import sync
from identity.directory.models import COUNTS
from identity.models import User
from identity.selectors import same_person
from identity.web import client_ip

from . import filters
from .desk import DeskAdmin, row_or_404

KEY_CHALLENGE = "desk_security_key_challenge"
# What the challenge was issued for (a security key or a passkey): the answer is registered as that, whatever is posted.
KEY_FORM = "desk_security_key_form"


class CappedCountPaginator(Paginator):
    """Counts at most ``CAP`` + 1 rows: a full COUNT(*) over a million people costs more than the page itself.

    Past the cap the list says "1001 people" and offers that many pages; a search or filter narrows it.
    """

    CAP = 1_000
    object_list: QuerySet  # the people list's query, never a plain list

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.CAP + 1].count()


class PersonPageForm(forms.ModelForm):
    """Only the read-only fields' words: nothing of a person is edited on this page."""

    class Meta:
        model = User
        fields = ()
        labels = {"username": "Institution ID", "vpn_access": "VPN access", "vpn_access_changed_at": "VPN access since"}
        help_texts = {"username": ""}  # not "Required. 150 characters or fewer...": nobody types it here


@admin.register(User, site=site)
class PersonAdmin(DeskAdmin):
    form = PersonPageForm
    list_display = (
        "username",
        "first_name",
        "last_name",
        "email",
        "department",
        "enrolled",
        "working_devices",
        "locked",
        "held",
    )
    list_filter = (
        filters.EnrolledFilter,
        filters.LockedFilter,
        filters.HeldFilter,
        "vpn_access",
        filters.DeviceKindFilter,
        filters.DepartmentFilter,
        "is_staff",
    )
    search_fields = ("username",)  # shows the search box; the search itself is selectors.matching_people
    search_help_text = "Institution ID, name, email, or a phone number in any format, e.g. (617) 432-2000."
    show_full_result_count = False
    paginator = CappedCountPaginator
    list_per_page = 50
    change_form_template = "helpdesk/person.html"
    fields = (
        "username",
        "source",  # a local account, or one from the directory (which owns the names, email and department)
        "deactivated_at",
        "first_name",
        "last_name",
        "email",
        "department",
        "vpn_access",
        "vpn_access_changed_at",
        "second_factor_failures",
        "locked_at",
        "locked_until",
        "lost_last_factor_at",
        "last_login",
        "date_joined",
    )
    readonly_fields = fields

    # --- the list ---------------------------------------------------------------------------------------

    def get_queryset(self, request):
        # "Enrolled" is the project's one rule, the view devices_working_registration: its rows are the working devices.
        count = working_registrations("pk").order_by().values("user_id").annotate(n=Count("*")).values("n")
        return (
            super()
            .get_queryset(request)
            .annotate(
                working_device_count=Coalesce(Subquery(count, output_field=IntegerField()), 0),
                # The "locked" filter's rule, so the column and the filter agree.
                locked_in_force=ExpressionWrapper(User.locked_now(), output_field=BooleanField()),
            )
        )

    def get_search_results(self, request, queryset, search_term):
        return selectors.matching_people(queryset, search_term)

    def get_ordering(self, request):
        # Search hits by name. Ordered by id, PostgreSQL would walk the primary key backwards filtering every row
        # until it found a page of matches (160 ms for "Mary Smi" among a million); a name order makes it use the
        # name indexes and sort the few hits.
        if request.GET.get("q", "").strip():
            return ("last_name", "first_name", "username")
        return ("-pk",)

    @admin.display(boolean=True, description="enrolled")
    def enrolled(self, obj):
        return obj.working_device_count > 0

    @admin.display(description="working devices")
    def working_devices(self, obj):
        return obj.working_device_count

    @admin.display(boolean=True, description="locked")
    def locked(self, obj):
        return obj.locked_in_force

    @admin.display(boolean=True, description="setup held")
    def held(self, obj):
        return obj.lost_last_factor_at is not None

    # No add, change or delete for anyone (DeskAdmin): changes are desk actions (AC-04).

    # --- the person page ------------------------------------------------------------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        person = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if person is not None and self.has_view_permission(request, person):
            own = same_person(person, request.user)
            extra.update(selectors.person_overview(person))
            extra.update(
                person=person,
                title=person_words(person),
                subtitle=None,
                desk_actions=actions_for(person, request.user),
                own_account=own,
                bypass_set=current_bypass_codes(person),
                identity_check=services.current_identity_check(person, agent=request.user),
                can_work_cases=request.user.has_perm("helpdesk.work_cases") and not own,
                can_check=request.user.has_perm("helpdesk.record_identity_check") and not own,
                needs_approval=services.second_approval_reasons(person, action=""),
                from_case=selectors.open_case_of(person, request.GET.get("case", "")),
                can_sync_directory=person.source == User.Source.LDAP
                and bool(settings.LDAP_SERVER_URIS)
                and request.user.has_perm("directory.sync_person"),
            )
        return super().change_view(request, object_id, form_url, extra)

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/desk/check/", view(self.identity_check_view), name="helpdesk_identity_check"),
            path("<path:object_id>/desk/case/", view(self.open_case_view), name="helpdesk_open_case"),
            path(
                "<path:object_id>/desk/security-key-options/",
                view(require_POST(self.security_key_options_view)),
                name="helpdesk_security_key_options",
            ),
            path(
                "<path:object_id>/directory-sync/",
                view(require_POST(self.directory_sync_view)),
                name="helpdesk_directory_sync",
            ),
            path("<path:object_id>/desk/<str:action>/", view(self.action_view), name="helpdesk_action"),
        ] + super().get_urls()

    def _person(self, request, object_id, permission: str) -> User:
        if not request.user.has_perm(f"helpdesk.{permission}"):
            raise PermissionDenied
        return row_or_404(User, object_id)

    def _person_page(self, person):
        return redirect(reverse("admin:identity_user_change", args=[person.pk]))

    def directory_sync_view(self, request, object_id):
        """ "Sync from the directory": this one person now, as the next full run would (audited)."""
        person = row_or_404(User, object_id, source=User.Source.LDAP)
        try:
            run = sync.sync_directory(person=person.username, actor=request.user)
        except ValidationError as error:
            raise PermissionDenied from error
        except sync.SyncInProgress as error:
            self.message_user(request, str(error), messages.WARNING)
            return self._person_page(person)
        done = [f"{getattr(run, name)} {name}" for name in COUNTS if getattr(run, name)]
        level = messages.ERROR if run.status == run.Status.FAILED or run.errors else messages.SUCCESS
        self.message_user(request, " ".join([f"{run}:", ", ".join(done) or "nothing to do.", run.error_text]), level)
        return self._person_page(person)

    def identity_check_view(self, request, object_id):
        person = self._person(request, object_id, "record_identity_check")
        next_action = request.GET.get("next", "")
        next_action = next_action if next_action in ACTIONS else ""
        approval = request.GET.get("approval", "")  # back to an approved request the agent finishes
        approval = approval if selectors.whole_number(approval) is not None else ""
        form = IdentityCheckForm(request.POST or None, person=person, initial={"case": request.GET.get("case", "")})
        if request.method == "POST" and form.is_valid():
            try:
                services.record_identity_check(
                    person,
                    actor=request.user,
                    method=form.cleaned_data["method"],
                    reference=form.cleaned_data["reference"],
                    case=form.cleaned_data["case"],
                    ip=client_ip(request),
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                self.message_user(request, "Identity check recorded.", messages.SUCCESS)
                if approval:
                    return redirect(reverse("admin:helpdesk_approvalrequest_change", args=[approval]))
                if next_action:
                    query = urlencode({"case": form.cleaned_data["case"].pk}) if form.cleaned_data["case"] else ""
                    url = reverse("admin:helpdesk_action", args=[person.pk, next_action])
                    return redirect(f"{url}?{query}" if query else url)
                return self._person_page(person)
        title = f"Check who is calling: {person.get_full_name() or person.username}"
        return self._render(
            request,
            "helpdesk/identity_check.html",
            person,
            form=form,
            title=title,
            next_action=ACTIONS.get(next_action),
        )

    def action_view(self, request, object_id, action):
        desk_action = ACTIONS.get(action)
        if desk_action is None:
            raise Http404
        person = self._person(request, object_id, desk_action.permission)
        if same_person(person, request.user):
            self.message_user(request, services.errors.OWN_ACCOUNT, messages.ERROR)
            return self._person_page(person)
        seen = selectors.whole_number(request.POST.get("seen", ""))
        since = runner.acted_since(person, actor=request.user, seen=seen) if seen is not None else ""
        if since:
            # The same form again (a reload, a second tab): to the person's page, which shows what was done; a
            # reload there posts nothing. The runner decides again under a lock, for two posts at once.
            self.message_user(request, since, messages.ERROR)
            return self._person_page(person)
        if not desk_action.applies(person):
            self.message_user(request, services.errors.ACTION_DOES_NOT_APPLY, messages.ERROR)
            return self._person_page(person)
        check = services.current_identity_check(person, agent=request.user)
        if check is None:
            query = urlencode({"next": action, "case": request.GET.get("case", "")})
            return redirect(f"{reverse('admin:helpdesk_identity_check', args=[person.pk])}?{query}")
        kwargs = {"person": person} if desk_action.person_form else {}
        initial = {
            **(desk_action.initial(person) if desk_action.initial else {}),
            "case": request.GET.get("case", check.case_id),
        }
        needs_approval = services.second_approval_reasons(person, action=action)
        # A live action on a staff account: filed first (its filing form, no key yet), then run here once approved.
        approved = approvals.ready_request(person, agent=request.user, action=action) if desk_action.live else None
        filing = desk_action.live and bool(needs_approval) and approved is None
        if approved is not None:
            initial.update(approved.params)
            needs_approval = []
        form_class = desk_action.filing_form if filing else desk_action.form
        form = form_class(request.POST or None, initial=initial, **kwargs)
        form.fields["case"] = case_field(person)
        # What this page is shown after: the runner refuses it once another desk action is recorded (a reload, a
        # second tab). It guards against repeats of our own page, which always sends it; a post made by hand
        # without it is compared with nothing, as a script's call of the runner is.
        last = selectors.last_desk_event(person)
        form.fields["seen"] = forms.IntegerField(
            widget=forms.HiddenInput, min_value=0, required=False, initial=last.sequence if last else 0
        )
        if approved is not None:
            # What the second agent approved is what runs (approvals.finish_request): shown, not to be changed here.
            for name in approved.params:
                if name in form.fields:
                    form.fields[name].disabled = True
        if request.method == "POST" and form.is_valid():
            params = dict(form.cleaned_data)
            case = params.pop("case")
            seen = params.pop("seen")
            if desk_action.live and not filing:  # the key answered the challenge this session was given, once
                params["challenge"] = SessionChallenge(
                    request.session.pop(KEY_CHALLENGE, None), request.session.session_key
                )
                params["form"] = request.session.pop(KEY_FORM, params.get("form"))
            try:
                if approved is not None:
                    answer = {"credential": params["credential"], "challenge": params["challenge"]}
                    outcome = approvals.finish_request(
                        approved, actor=request.user, identity_check=check, ip=client_ip(request), answer=answer
                    )
                else:
                    outcome = runner.perform(
                        action,
                        person,
                        actor=request.user,
                        identity_check=check,
                        case=case,
                        params=params,
                        ip=client_ip(request),
                        seen=seen,
                    )
            except ValidationError as error:
                if getattr(error, "code", None) == "acted_since":
                    self.message_user(request, " ".join(error.messages), messages.ERROR)
                    return self._person_page(person)
                form.add_error(None, error)
            else:
                if outcome.codes:
                    return self._render(
                        request,
                        "helpdesk/codes.html",
                        person,
                        codes=outcome.codes,
                        outcome=outcome,
                        title="Bypass codes",
                    )
                if outcome.request:
                    self.message_user(request, filed_words(outcome.request), messages.WARNING)
                else:
                    self.message_user(request, outcome.message, messages.SUCCESS)
                return self._person_page(person)
        confirm, confirm_choices = f"Yes, {desk_action.phrase}", {}
        if desk_action.live and not filing and "form" in form.fields:
            # A key or a passkey: the button names what is chosen (static/js/webauthn.js follows a new choice).
            confirm_choices = {key: f"Yes, {phrase}" for key, phrase in KEY_PHRASES.items()}
            confirm = confirm_choices.get(form["form"].value() or SECURITY_KEY, confirm)
        return self._render(
            request,
            "helpdesk/action.html",
            person,
            form=form,
            action=desk_action,
            check=check,
            title=f"{desk_action.title}: {person.get_full_name() or person.username}",
            needs_approval=needs_approval,
            ceremony=desk_action.live and not filing,
            approved=approved,
            confirm=confirm,
            confirm_choices=confirm_choices,
        )

    def security_key_options_view(self, request, object_id):
        """Options for ``navigator.credentials.create()`` in the agent's browser, for the person at the desk."""
        person = self._person(request, object_id, "register_security_key")
        action = ACTIONS["register_security_key"]
        if same_person(person, request.user) or not action.applies(person):
            return JsonResponse({"error": services.errors.ACTION_DOES_NOT_APPLY}, status=403)
        approved = approvals.ready_request(person, agent=request.user, action=action.key)
        if services.second_approval_reasons(person, action=action.key) and not approved:
            return JsonResponse({"error": services.errors.KEY_NEEDS_APPROVAL_FIRST}, status=403)
        if services.current_identity_check(person, agent=request.user) is None:
            message = services.errors.NO_CURRENT_CHECK.format(minutes=settings.IDENTITY_CHECK_VALID_MINUTES)
            return JsonResponse({"error": message}, status=403)
        if approved is not None:
            # An approved request registers what the second agent approved (its fields are not posted: disabled).
            chosen = approved.params.get("form") or SECURITY_KEY
        else:
            form = DeskKeyLabelForm(request.POST)
            if not form.is_valid():
                return JsonResponse({"error": next(iter(form.errors.values()))[0]}, status=400)
            chosen = form.cleaned_data["form"]
        if not request.session.session_key:
            request.session.save()
        options, challenge = security_keys.start_security_key_registration(
            person, session_key=request.session.session_key, passkey=chosen == PASSKEY
        )
        request.session[KEY_CHALLENGE] = challenge.pk
        request.session[KEY_FORM] = chosen
        return HttpResponse(options, content_type="application/json")

    def open_case_view(self, request, object_id):
        person = self._person(request, object_id, "work_cases")
        last = selectors.last_desk_event(person, actions=selectors.CASE_EVENTS)
        form = CaseForm(request.POST or None, initial={"seen": last.sequence if last else 0})
        if request.method == "POST" and form.is_valid():
            try:
                case = services.open_case(person, actor=request.user, ip=client_ip(request), **form.cleaned_data)
            except ValidationError as error:
                if error.code != "opened_since":
                    form.add_error(None, error)
                else:  # the same form again: to the person's page, which lists the case opened
                    self.message_user(request, " ".join(error.messages), messages.ERROR)
                    return self._person_page(person)
            else:
                self.message_user(request, f"{case} opened.", messages.SUCCESS)
                return redirect(reverse("admin:helpdesk_case_change", args=[case.pk]))
        return self._render(request, "helpdesk/open_case.html", person, form=form, title=f"Open a case: {person}")
