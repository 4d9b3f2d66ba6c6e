"""Who a request came from, behind the hall's reverse proxies (``GATEWAY.trusted_proxies``):
the address the sign-in lockout, the progress throttle and the audit log count.

``X-Forwarded-For`` is believed only as far as a trusted proxy wrote it. A client that
connects directly is its socket's address whatever it sends; behind trusted proxies the
header is read from the right (each proxy appends the peer it saw), past every hop that is
itself a trusted proxy, and the first untrusted address is the client. Whatever lies to its
left was written by the client and is never read. A malformed entry (a port, a name, an
empty field) stops the walk at the last trusted hop, whose own address is then the client:
never an address taken from beyond the garbage, so a forged header can neither pick an
address nor move the count off the proxy it came through."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address


def parse_network(entry: object) -> Network:
    """One ``trusted_proxies`` entry, an address (a one-host network) or a CIDR network
    (host bits allowed: ``10.1.2.3/8`` is ``10.0.0.0/8``); ``ValueError`` otherwise, also
    for a network of every address, which would let any client name its own address."""
    if not isinstance(entry, str):
        raise ValueError(entry)
    network = ipaddress.ip_network(entry.strip(), strict=False)
    if network.prefixlen == 0:
        raise ValueError(entry)
    return network


def client_address(remote_addr: str, forwarded_for: str | None, trusted: Iterable[Network]) -> str:
    """The client's address: ``remote_addr`` unless it is a trusted proxy, else the first
    address of ``forwarded_for`` (the joined ``X-Forwarded-For`` headers), from the right,
    that is not a trusted proxy; the last trusted hop when the header runs out (every hop
    trusted, or none sent) or an entry is malformed. An address taken from the header is in
    its canonical form (``2001:db8::1``, never ``2001:DB8:0::1``)."""
    networks = tuple(trusted)
    hop = _address(remote_addr)
    if hop is None or not _trusted(hop, networks):
        return remote_addr
    client = remote_addr
    for entry in reversed((forwarded_for or "").split(",")):
        forwarded = _address(entry)
        if forwarded is None:
            break  # malformed: the last trusted hop is all that is known
        client = str(forwarded)
        if not _trusted(forwarded, networks):
            break
    return client


def _address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(address: Address, networks: tuple[Network, ...]) -> bool:
    """Whether ``address`` is one of the trusted proxies; an IPv4 address that a dual-stack
    socket shows as ``::ffff:a.b.c.d`` counts as that IPv4 address."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)
