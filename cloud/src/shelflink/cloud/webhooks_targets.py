"""Where the dispatcher may send: dealers choose the URLs, so by default a URL's host
must resolve only to public addresses.

Without this check a dealer could register ``http://10.0.0.5/admin`` or the cloud
provider's metadata address and have our servers POST to the private network
(server-side request forgery). :func:`resolve_target` resolves a host once and
checks every address it gets; the connection is then made to those very addresses
(``webhooks_transport``), never to a second answer of the name server, so a name
that answers a public address to the check and a private one to the connection
(DNS rebinding) gets nowhere.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver: TypeAlias = Callable[[str, int], Awaitable[Sequence[IPAddress]]]
"""``(host, port) -> addresses`` in the order to try them; raises ``OSError`` when
the name does not resolve."""

# RFC 6052: IPv6 addresses that a NAT64 gateway turns into the IPv4 address they end in.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class RefusedTarget(ValueError):
    """The URL names a loopback, private, link-local or otherwise non-public address."""


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """The operating system's resolver (``getaddrinfo``), duplicates dropped."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` is reachable on the public internet, judging an IPv6 address
    that carries an IPv4 one (IPv4-mapped, NAT64, 6to4) by the IPv4 address too."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public(address.ipv4_mapped)
        # What a DNS64 server answers for an IPv4-only host on an IPv6-only network.
        if address in _NAT64:
            return is_public(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        # Python counts site-local and 6to4 addresses as global; 6to4 may carry a
        # private IPv4 address.
        if address.is_site_local:
            return False
        if address.sixtofour is not None and not is_public(address.sixtofour):
            return False
    return address.is_global and not address.is_multicast and not address.is_reserved


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    """Which addresses may be called. ``allow_private`` permits any address (tests,
    private deployments); ``allowed_networks`` permits only the networks named, for
    a deployment whose receivers live on a known private network while the rest of
    it, the cloud metadata address included, stays refused."""

    allow_private: bool = False
    allowed_networks: tuple[IPNetwork, ...] = ()

    def permits(self, address: IPAddress) -> bool:
        if self.allow_private or is_public(address):
            return True
        as_ipv4 = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        return any(
            candidate in network
            for network in self.allowed_networks
            for candidate in (address, as_ipv4)
            if candidate is not None
        )


def ip_literal(host: str) -> IPAddress | None:
    """``host`` as an address when it is one (IPv6 with or without URL brackets)."""
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return None


async def resolve_target(
    host: str, port: int, *, policy: TargetPolicy, resolver: Resolver = system_resolver
) -> list[IPAddress]:
    """The addresses of ``host`` to connect to, every one of them permitted by
    ``policy``; raises :class:`RefusedTarget` if any is not (a name that answers one
    public and one private address is refused as a whole), and ``OSError`` when the
    name does not resolve. An address literal is checked without a lookup."""
    literal = ip_literal(host)
    if literal is not None:
        if not policy.permits(literal):
            raise RefusedTarget(f"{literal} is not a public address")
        return [literal]
    addresses = list(await resolver(host, port))
    if not addresses:
        raise OSError(f"{host} has no address")
    for address in addresses:
        if not policy.permits(address):
            raise RefusedTarget(f"{host} resolves to {address}, which is not a public address")
    return addresses
