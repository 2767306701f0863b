"""One rule for "is this client in these networks", at every door that asks: SCIM clients' and VPN integrations'
networks, METRICS_NETWORKS and HEALTH_DETAIL_NETWORKS. An IPv4 client of a server listening on "::" arrives as an
IPv4-mapped IPv6 address (``::ffff:10.20.3.4``), which is the IPv4 address it maps."""

import pytest
from django.test import Client

from identity.networks import address_allowed, address_in

MAPPED = "::ffff:10.20.3.4"
MAPPED_OUTSIDE = "::ffff:203.0.113.9"


def test_a_mapped_address_is_the_ipv4_address_it_maps():
    assert address_in(["10.20.0.0/16"], MAPPED)
    assert not address_in(["10.20.0.0/16"], MAPPED_OUTSIDE)
    assert address_in(["::ffff:10.20.0.0/112"], MAPPED)  # written as a mapped network, it still matches
    assert address_in(["::1/128"], "::1") and not address_in(["127.0.0.0/8"], "::1")
    assert not address_in(["10.20.0.0/16"], None) and not address_in(["10.20.0.0/16"], "not an address")
    assert not address_in([], MAPPED)


def test_credential_networks_read_a_mapped_address_the_same_way():
    # SCIM clients (identity.directory.scim_clients) and VPN integrations (vpn.services) both ask this.
    assert address_allowed("10.20.0.0/16", MAPPED)
    assert not address_allowed("10.20.0.0/16", MAPPED_OUTSIDE)
    assert address_allowed("", MAPPED_OUTSIDE)  # no networks: anywhere


@pytest.mark.django_db
def test_metrics_networks_read_a_mapped_address(settings):
    settings.METRICS_NETWORKS = ["10.20.0.0/16"]
    settings.METRICS_TOKEN = ""
    assert Client().get("/metrics", REMOTE_ADDR=MAPPED).status_code == 200
    assert Client().get("/metrics", REMOTE_ADDR=MAPPED_OUTSIDE).status_code == 403


@pytest.mark.django_db
def test_health_detail_networks_read_a_mapped_address(settings):
    settings.HEALTH_DETAIL_NETWORKS = ["10.20.0.0/16"]
    assert "checks" in Client().get("/readyz", REMOTE_ADDR=MAPPED).json()
    assert "checks" not in Client().get("/readyz", REMOTE_ADDR=MAPPED_OUTSIDE).json()
