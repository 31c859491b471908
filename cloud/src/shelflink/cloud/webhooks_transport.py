"""The dispatcher's HTTP transport: every connection goes to an address that
:func:`~shelflink.cloud.webhooks_targets.resolve_target` resolved and checked in the
same step, never to a second answer of the name server (DNS rebinding).

Only the TCP connect is changed. The connection pool still keys connections by the
URL's host name, the ``Host`` header is the URL's, and TLS sends the host name as
SNI and verifies the certificate against it, exactly as for any other request.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable

import httpcore
import httpx

from shelflink.cloud.webhooks_targets import (
    Resolver,
    TargetPolicy,
    resolve_target,
    system_resolver,
)


class PinnedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections to the checked addresses of a host, trying them in the
    resolver's order; raises :class:`~shelflink.cloud.webhooks_targets.RefusedTarget`
    when the policy refuses any of them."""

    def __init__(self, policy: TargetPolicy, resolver: Resolver = system_resolver) -> None:
        self._policy = policy
        self._resolver = resolver
        self._network = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        failures: list[str] = []
        try:
            # One budget for the lookup and every address, as for a plain connect.
            async with asyncio.timeout(timeout):
                try:
                    addresses = await resolve_target(
                        host, port, policy=self._policy, resolver=self._resolver
                    )
                except OSError as exc:
                    raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
                for address in addresses:
                    try:
                        return await self._network.connect_tcp(
                            str(address),
                            port,
                            local_address=local_address,
                            socket_options=socket_options,
                        )
                    except httpcore.ConnectError as exc:
                        failures.append(f"{address}: {exc}")
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"cannot connect to {host} in time") from exc
        raise httpcore.ConnectError("; ".join(failures))

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport whose connections go through :class:`PinnedNetworkBackend`.
    No proxy: a proxy would resolve the name itself."""

    def __init__(
        self,
        policy: TargetPolicy,
        resolver: Resolver = system_resolver,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        ssl_context = httpx.create_ssl_context(verify=verify, trust_env=False)
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        # httpx has no parameter for httpcore's network backend, so the pool it built
        # is replaced by the same pool with ours (the webhook tests fail if it is not).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=PinnedNetworkBackend(policy, resolver),
        )
