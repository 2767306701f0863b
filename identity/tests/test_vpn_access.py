"""VPN access requests and their approval: audited, notified, refused to oneself (AC-06, BND-03)."""

import pytest
from django.core.exceptions import ValidationError

from identity import services
from identity.models import AuditEvent, User

pytestmark = pytest.mark.django_db(transaction=True)


def test_ac06_request_then_approve_is_audited_and_notified(make_user, mailoutbox):
    person = make_user("vpnuser")
    agent = make_user("agent1", is_staff=True)

    person = services.request_vpn_access(person, reason="on-call radiology reads from home")
    assert person.vpn_access == User.VpnAccess.REQUESTED
    person = services.approve_vpn_access(person, actor=agent, reason="manager approved in ticket T-1")

    person.refresh_from_db()
    assert person.vpn_access == User.VpnAccess.APPROVED
    assert person.vpn_access_changed_by == agent
    events = list(AuditEvent.objects.filter(subject=person).order_by("sequence").values_list("action", "actor"))
    assert events == [("vpn_access.requested", person.pk), ("vpn_access.approved", agent.pk)]
    assert [m.to for m in mailoutbox] == [[person.email], [person.email]]
    assert "you now have vpn access" in mailoutbox[1].subject


def test_ac06_revoke_needs_a_reason_and_changes_nothing_without_one(make_user):
    person = make_user("vpnuser")
    agent = make_user("agent1", is_staff=True)
    services.approve_vpn_access(person, actor=agent, reason="approved")

    with pytest.raises(ValidationError):
        services.revoke_vpn_access(person, actor=agent, reason="   ")
    person.refresh_from_db()
    assert person.vpn_access == User.VpnAccess.APPROVED

    services.revoke_vpn_access(person, actor=agent, reason="left the institution")
    person.refresh_from_db()
    assert person.vpn_access == User.VpnAccess.REVOKED


def test_nobody_approves_their_own_access_or_asks_twice(make_user):
    agent = make_user("agent1", is_staff=True)
    with pytest.raises(ValidationError):
        services.approve_vpn_access(agent, actor=agent, reason="me")
    person = services.request_vpn_access(make_user("vpnuser"), reason="remote work")
    with pytest.raises(ValidationError):
        services.request_vpn_access(person, reason="again")
    assert AuditEvent.objects.filter(action__startswith="vpn_access.").count() == 1
