"""RADIUS clients: one network, one secret (the most specific network answers, the same network twice is refused),
and the Message-Authenticator choice per client, in the services, the admin and the command (API-08)."""

import re
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from helpdesk.tests.conftest import superuser  # noqa: F401 (fixtures)
from identity.models import AuditEvent
from testsupport import details_of
from vpn import services
from vpn.models import RadiusClient
from vpn.tests.test_integrations import admin_client  # noqa: F401 (a signed-in superuser)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_the_most_specific_network_answers_and_the_same_network_twice_is_refused():
    pool, _ = services.create_radius_client(name="VPN pool", network="10.0.0.0/24", actor=None)
    one, _ = services.create_radius_client(name="ASA 1", network="10.0.0.5/32", actor=None)
    assert services.radius_client_for("10.0.0.5") == one
    assert services.radius_client_for("::ffff:10.0.0.5") == one
    assert services.radius_client_for("10.0.0.6") == pool
    assert services.radius_overlaps(one) == [
        "VPN pool (10.0.0.0/24) overlaps it: requests from 10.0.0.5/32 are checked with ASA 1's secret, the rest of "
        "10.0.0.0/24 with VPN pool's."
    ]

    with pytest.raises(ValidationError, match="'ASA 1' already has the network 10.0.0.5/32"):
        services.create_radius_client(name="ASA 1 new", network="10.0.0.5", actor=None)
    assert not RadiusClient.objects.filter(name="ASA 1 new").exists()
    # Replacing a client: disable the old one, then the new one may take its network; the old one cannot come back.
    services.update_radius_client(one, name="ASA 1", network="10.0.0.5/32", enabled=False, actor=None)
    new, _ = services.create_radius_client(name="ASA 1 new", network="10.0.0.5/32", actor=None)
    assert services.radius_client_for("10.0.0.5") == new
    with pytest.raises(ValidationError, match="'ASA 1 new' already has"):
        services.update_radius_client(one, name="ASA 1", network="10.0.0.5/32", enabled=True, actor=None)
    with pytest.raises(ValidationError, match="already has"):
        services.update_radius_client(pool, name="VPN pool", network="10.0.0.5/32", enabled=True, actor=None)
    one.refresh_from_db()
    pool.refresh_from_db()
    assert not one.enabled and pool.network == "10.0.0.0/24"


def test_the_command_refuses_a_taken_network_and_says_which_client_answers_where():
    call_command("create_radius_client", "VPN pool", "10.0.0.0/24", stdout=StringIO())
    out = StringIO()
    call_command("create_radius_client", "ASA 1", "10.0.0.5", stdout=out)
    assert "requests from 10.0.0.5/32 are checked with ASA 1's secret, the rest of 10.0.0.0/24" in out.getvalue()
    with pytest.raises(CommandError, match="'ASA 1' already has the network 10.0.0.5/32.*narrower network"):
        call_command("create_radius_client", "ASA 2", "10.0.0.5/32", stdout=StringIO())
    assert RadiusClient.objects.count() == 2
    assert "most specific network" in call_command_help()


def call_command_help() -> str:
    from vpn.management.commands.create_radius_client import Command

    return Command.help


def test_the_admin_refuses_a_taken_network_and_says_which_client_answers_where(admin_client):  # noqa: F811
    admin_client.post(reverse("admin:vpn_radiusclient_add"), {"name": "VPN pool", "network": "10.0.0.0/24"})
    response = admin_client.post(reverse("admin:vpn_radiusclient_add"), {"name": "ASA 1", "network": "10.0.0.5"})
    assert "the rest of 10.0.0.0/24 with VPN pool" in response.content.decode()
    response = admin_client.post(reverse("admin:vpn_radiusclient_add"), {"name": "ASA 2", "network": "10.0.0.5/32"})
    assert response.status_code == 200
    assert "already has the network 10.0.0.5/32" in response.content.decode().replace("&#x27;", "'")
    assert not RadiusClient.objects.filter(name="ASA 2").exists()
    page = admin_client.get(reverse("admin:vpn_radiusclient_add")).content.decode()
    assert "most specific network holding its address" in page


def test_api_08_message_authenticator_is_required_unless_a_client_is_set_otherwise(admin_client):  # noqa: F811
    required, _ = services.create_radius_client(name="ASA", network="10.0.0.5", actor=None)
    assert required.message_authenticator_required
    out = StringIO()
    call_command("create_radius_client", "OpenVPN", "10.0.0.6", "--limit-proxy-state", stdout=out)
    assert "WARNING: requests without Message-Authenticator are accepted" in out.getvalue()
    openvpn = RadiusClient.objects.get(name="OpenVPN")
    assert openvpn.message_authenticator == "limit_proxy_state"
    created = AuditEvent.objects.get(action="vpn.radius_client_created", details__radius_client="OpenVPN")
    assert created.details["message_authenticator"] == "limit_proxy_state"

    changelist = admin_client.get(reverse("admin:vpn_radiusclient_changelist")).content.decode()
    rows = dict(re.findall(r">(ASA|OpenVPN)</a>.*?field-message_authenticator_shown\">([^<]*)<", changelist, re.S))
    assert rows == {
        "ASA": "Required",
        "OpenVPN": "Not required: accepted without it only when the request carries no Proxy-State",
    }
    page = admin_client.get(reverse("admin:vpn_radiusclient_change", args=[openvpn.pk])).content.decode()
    assert "weakens the Blast-RADIUS defence" in page
    page = admin_client.get(reverse("admin:vpn_radiusclient_change", args=[required.pk])).content.decode()
    assert "weakens the Blast-RADIUS defence. Require it" not in page

    # Set back to required in the admin: audited as a change.
    admin_client.post(
        reverse("admin:vpn_radiusclient_change", args=[openvpn.pk]),
        {"name": "OpenVPN", "network": "10.0.0.6/32", "message_authenticator": "require", "enabled": "on"},
    )
    openvpn.refresh_from_db()
    assert openvpn.message_authenticator_required
    changed = AuditEvent.objects.get(action="vpn.radius_client_changed")
    assert details_of(changed) == {"radius_client": "OpenVPN", "message_authenticator": "require"}
    with pytest.raises(ValidationError):
        services.create_radius_client(name="X", network="10.0.0.7", message_authenticator="never", actor=None)
