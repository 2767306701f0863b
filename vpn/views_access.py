"""The self-service VPN access page: the person's status, and a request with a reason. Thin: the form checks the
shape, ``identity.services.request_vpn_access`` changes state (audited, notified)."""

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from devices.views import person_view
from identity import services as identity_services
from identity.models import User
from identity.web import client_ip

from .services import vpn_factors


class VpnAccessRequestForm(forms.Form):
    reason = forms.CharField(
        label="Why do you need the VPN?",
        help_text="For example: working from home on patient records. The help desk reads this.",
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


@person_view
@require_http_methods(["GET", "POST"])
def vpn_access(request: HttpRequest) -> HttpResponse:
    person = request.user
    assert isinstance(person, User)  # person_view lets only a signed-in person through
    can_request = person.vpn_access in (User.VpnAccess.NONE, User.VpnAccess.REVOKED)
    form = VpnAccessRequestForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and can_request and form.is_valid():
        try:
            identity_services.request_vpn_access(person, reason=form.cleaned_data["reason"], ip=client_ip(request))
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, "Your request was sent to the help desk. We will email you when it is decided.")
            return redirect("vpn:access")
    return render(
        request,
        "vpn/access.html",
        {"form": form, "can_request": can_request, "has_device": vpn_factors(person).usable},
    )
