"""Integrations and RADIUS clients: random secrets encrypted at rest, shown once, audited (API-03)."""

import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from devices import crypto
from helpdesk.tests.conftest import staff_member, superuser  # noqa: F401 (fixtures)
from identity.models import AuditEvent
from vpn import services
from vpn.models import Integration, RadiusClient

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def test_api03_command_creates_an_integration_and_prints_the_keys_once():
    out = StringIO()
    call_command("create_vpn_integration", "Palo Alto", "--networks", "10.8.0.0/16", stdout=out)
    ikey = re.search(r"integration key: (DI[A-Z0-9]{18})\n", out.getvalue()).group(1)
    secret = re.search(r"secret key: +([A-Za-z0-9]{40})\n", out.getvalue()).group(1)
    integration = Integration.objects.get(integration_key=ikey)
    assert integration.allowed_networks == "10.8.0.0/16"
    assert crypto.decrypt(integration.encrypted_secret).decode() == secret
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM vpn_integration")
        assert secret not in repr(cursor.fetchall())
    event = AuditEvent.objects.get(action="vpn.integration_created")
    assert event.details["integration"] == ikey and secret not in repr(event.details)


def test_api03_bad_networks_change_nothing():
    with pytest.raises(Exception, match="not a network"):
        services.create_integration(name="x", allowed_networks="10.0.0.0/33", actor=None)
    assert not Integration.objects.exists()


@pytest.fixture
def admin_client(client, superuser, sign_in):  # noqa: F811
    sign_in(client, superuser)
    return client


def test_api03_superuser_creates_rotates_and_disables_without_seeing_the_secret_again(admin_client):
    response = admin_client.post(
        reverse("admin:vpn_integration_add"), {"name": "OpenVPN", "allowed_networks": "", "enabled": "on"}
    )
    secret = re.search(r"<code>([A-Za-z0-9]{40})</code>", response.content.decode()).group(1)
    assert "no-store" in response["Cache-Control"]
    integration = Integration.objects.get(name="OpenVPN")
    page = admin_client.get(reverse("admin:vpn_integration_change", args=[integration.pk])).content.decode()
    assert secret not in page and integration.encrypted_secret not in page
    assert secret not in admin_client.get(reverse("admin:vpn_integration_changelist")).content.decode()

    # The list's action asks first, on a page naming the secret it replaces; nothing is rotated yet.
    response = admin_client.post(
        reverse("admin:vpn_integration_changelist"),
        {"action": "rotate_secret", "_selected_action": [integration.pk]},
    )
    rotate = reverse("admin:vpn_integration_rotate", args=[integration.pk])
    assert response.status_code == 302 and response["Location"] == rotate
    asking = admin_client.get(rotate).content.decode()
    assert "Rotate the secret key of OpenVPN" in asking
    integration.refresh_from_db()
    assert crypto.decrypt(integration.encrypted_secret).decode() == secret

    replacing = integration.created_at.isoformat()
    response = admin_client.post(rotate, {"replacing": replacing})
    assert "no-store" in response["Cache-Control"]
    rotated = re.search(r"<code>([A-Za-z0-9]{40})</code>", response.content.decode()).group(1)
    integration.refresh_from_db()
    assert rotated != secret and crypto.decrypt(integration.encrypted_secret).decode() == rotated

    # The same form again (a reload of the page showing the new secret): refused in words, nothing changes.
    again = admin_client.post(rotate, {"replacing": replacing}).content.decode()
    assert "was already replaced after that page was opened" in again and rotated not in again
    integration.refresh_from_db()
    assert crypto.decrypt(integration.encrypted_secret).decode() == rotated

    admin_client.post(
        reverse("admin:vpn_integration_change", args=[integration.pk]), {"name": "OpenVPN", "allowed_networks": ""}
    )
    integration.refresh_from_db()
    assert not integration.enabled
    actions = set(AuditEvent.objects.filter(action__startswith="vpn.integration").values_list("action", flat=True))
    assert actions == {"vpn.integration_created", "vpn.integration_rotated", "vpn.integration_changed"}
    changed = AuditEvent.objects.get(action="vpn.integration_changed")
    assert changed.details["enabled"] is False and changed.actor.is_superuser


def test_api03_radius_clients_in_the_admin(admin_client):
    response = admin_client.post(
        reverse("admin:vpn_radiusclient_add"), {"name": "ASA", "network": "10.0.0.5", "enabled": "on"}
    )
    secret = re.search(r"<code>([A-Za-z0-9]{40})</code>", response.content.decode()).group(1)
    client = RadiusClient.objects.get(name="ASA")
    assert client.network == "10.0.0.5/32"
    assert crypto.decrypt(client.encrypted_secret).decode() == secret
    assert AuditEvent.objects.filter(action="vpn.radius_client_created").exists()


def test_api03_help_desk_staff_cannot_see_integrations(client, staff_member, sign_in):  # noqa: F811
    sign_in(client, staff_member)
    assert client.get(reverse("admin:vpn_integration_changelist")).status_code == 403


def test_api03_a_change_made_elsewhere_applies_once_the_cache_time_is_over(settings, monkeypatch):
    """Another process (a second gunicorn worker, the admin) disables the integration: this one keeps its copy for
    at most VPN_INTEGRATION_CACHE_SECONDS, then reads the row again."""
    from vpn.services import integrations

    settings.VPN_INTEGRATION_CACHE_SECONDS = 5
    integration, _ = services.create_integration(name="Elsewhere", actor=None)
    assert integrations.integration_for_key(integration.integration_key)[0].enabled
    Integration.objects.filter(pk=integration.pk).update(enabled=False)  # as another process would
    assert integrations.integration_for_key(integration.integration_key)[0].enabled
    later = integrations.time.monotonic() + 6
    monkeypatch.setattr(integrations.time, "monotonic", lambda: later)
    assert not integrations.integration_for_key(integration.integration_key)[0].enabled
