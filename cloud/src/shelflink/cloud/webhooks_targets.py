"""Where the dispatcher may send: dealers choose the URLs, so by default a URL must
resolve only to public addresses.

Without this check a dealer could register ``http://10.0.0.5/admin`` or the cloud
provider's metadata address and have our servers POST to the private network
(server-side request forgery). The check runs at every attempt, because DNS
answers change. It cannot stop a name that resolves to a public address here
and a private one a moment later for the connection itself (DNS rebinding);
an egress firewall for the dispatcher closes that gap (docs/webhooks.md).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


class RefusedTarget(ValueError):
    """The URL names a loopback, private, link-local or otherwise non-public address."""


async def check_target(url: str, *, allow_private: bool) -> None:
    """Raise :class:`RefusedTarget` unless every address of ``url``'s host is public
    (anything goes with ``allow_private``, for tests and private deployments)."""
    if allow_private:
        return
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise RefusedTarget("the URL has no host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise RefusedTarget(f"cannot resolve {host}: {exc}") from exc
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if not address.is_global:
            raise RefusedTarget(f"{host} resolves to {address}, which is not a public address")
