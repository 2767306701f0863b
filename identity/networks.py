"""Client networks a credential may be used from (VPN integrations, SCIM clients), and the networks the metrics and
the health probes' details are shown to: one parser, one check (:func:`address_in`); and the network a per-address
limit counts a client in."""

import ipaddress
from collections.abc import Iterable

from django.core.exceptions import ValidationError


def parse_networks(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """CIDRs separated by commas, spaces or lines; a bad one raises ``ValidationError`` naming it."""
    networks = []
    for part in text.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError as error:
            raise ValidationError(f"{part!r} is not a network (write it like 10.8.0.0/16).") from error
    return networks


def validate_networks(text: str) -> None:
    parse_networks(text)


def clean_networks(text: str) -> str:
    """The networks one per line, as stored."""
    return "\n".join(str(network) for network in parse_networks(text))


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def address_in(networks: Iterable[str | Network], address: str | None) -> bool:
    """Whether ``address`` (from ``identity.web.client_ip``) is in one of ``networks`` (CIDRs or networks). An
    IPv4-mapped IPv6 address (``::ffff:10.0.0.5``, an IPv4 client of a server listening on ``::``) is the IPv4
    address it is. No address, or something that is not one, is in none; so is any address when there are none."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    candidates = [ip]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        candidates.append(ip.ipv4_mapped)
    for network in networks:
        net = network if not isinstance(network, str) else ipaddress.ip_network(network, strict=False)
        if any(candidate in net for candidate in candidates):
            return True
    return False


def address_allowed(networks_text: str, address: str | None) -> bool:
    """Empty ``networks_text`` allows any address; otherwise ``address`` (from ``identity.web.client_ip``) must be
    in one of them (:func:`address_in`), and no address at all is refused."""
    if not networks_text.strip():
        return True
    return address_in(parse_networks(networks_text), address)


# One IPv6 subscriber (a home, a phone, a cloud host) is routinely given a whole /64 and may use any of its 2**64
# addresses, so a limit per IPv6 address limits nobody; the /64 is the smallest block one party is assigned.
IPV6_CLIENT_PREFIX = 64


def client_network(address: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """The network a per-address limit counts ``address`` (from ``identity.web.client_ip``) in: an IPv4 address
    alone, an IPv6 address's /64, and an IPv4-mapped IPv6 address as the IPv4 address it is. Raises ``ValueError``
    for anything not an address."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = IPV6_CLIENT_PREFIX if ip.version == 6 else 32
    return ipaddress.ip_network(f"{ip}/{prefix}", strict=False)
