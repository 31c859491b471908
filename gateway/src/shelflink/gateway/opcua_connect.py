"""Opening and closing one asyncua session for a controller, with its library errors translated.

:func:`open_session` returns a connected client and a subscription to the
configured nodes, or raises :class:`OpcUaConnectError`; nothing else escapes
(asyncua raises a dozen exception types for a failed connect). A fresh
``Client`` is built for every attempt: reusing one after a lost connection is
known to hang in asyncua (FreeOpcUa/opcua-asyncio#1660), and asyncua's own
auto-reconnect is off because the gateway retries with its one backoff helper.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.subscription import OverflowPolicy, Subscription
from asyncua.crypto import uacrypto
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.ua.uaerrors import UaError, UaStatusCodeError
from cryptography import x509

from shelflink.gateway.opcua_config import OpcUaControllerConfig, parse_node_id

log = logging.getLogger("shelflink.gateway.opcua")

DEFAULT_APPLICATION_URI: Final = "urn:shelflink:gateway"
# Status names that mean "the server refused us" rather than "the server is not there".
_REFUSALS: Final = (
    "BadCertificate",
    "BadSecurity",
    "BadUserAccessDenied",
    "BadIdentityToken",
    "BadNoValidCertificates",
)

OnLost = Callable[[Exception], Coroutine[Any, Any, None]]


class OpcUaConnectError(Exception):
    """No session. ``refused`` is True when the server's security checks said no:
    waiting will not help until someone trusts a certificate or fixes a policy."""

    def __init__(self, detail: str, *, refused: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.refused = refused


@dataclass(slots=True)
class Session:
    client: Client
    subscription: Subscription
    fields: dict[ua.NodeId, str]  # monitored node -> config field name (NodeIds hash by value)


def describe(exc: BaseException) -> tuple[str, bool]:
    """A one-line account of an asyncua failure, and whether it is a security refusal."""
    if isinstance(exc, UaStatusCodeError):
        status = ua.StatusCode(ua.UInt32(exc.code))
        return f"{status.name}: {status.doc}", status.name.startswith(_REFUSALS)
    if isinstance(exc, TimeoutError):
        return "no answer in time", False
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (nothing listens there)", False
    if isinstance(exc, UaError) and "No matching endpoints" in str(exc):
        return f"the server offers no such endpoint: {exc}", True
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, False


def _uri_of(certificate: x509.Certificate) -> str | None:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None


async def _secure(client: Client, config: OpcUaControllerConfig) -> None:
    assert config.client_certificate is not None and config.client_private_key is not None
    certificate: x509.Certificate = await uacrypto.load_certificate(config.client_certificate)
    # Servers check that our ApplicationUri is the certificate's URI: take it
    # from the certificate, so the two cannot disagree.
    client.application_uri = _uri_of(certificate) or DEFAULT_APPLICATION_URI
    password = config.client_private_key_password
    await client.set_security(
        SecurityPolicyBasic256Sha256,
        certificate=str(config.client_certificate),
        private_key=str(config.client_private_key),
        private_key_password=None if password is None else password.get_secret_value(),
        server_certificate=(
            None if config.server_certificate is None else str(config.server_certificate)
        ),
        mode=getattr(ua.MessageSecurityMode, config.security_mode),
    )


async def _node(client: Client, text: str) -> ua.NodeId:
    node_id = parse_node_id(text)
    if isinstance(node_id, ua.ExpandedNodeId) and node_id.NamespaceUri:
        # nsu=<uri>: ask the server which index its namespace has today.
        index = await client.get_namespace_index(node_id.NamespaceUri)
        return ua.NodeId(node_id.Identifier, ua.Int16(index), node_id.NodeIdType)
    return node_id


async def _subscribe(client: Client, config: OpcUaControllerConfig) -> Session:
    wanted = {k: v for k, v in config.nodes.model_dump().items() if v is not None}
    fields: dict[ua.NodeId, str] = {}
    for name, text in wanted.items():
        fields[await _node(client, text)] = name
    subscription = await client.create_subscription(
        config.publishing_interval_ms,
        handler=None,  # iterator mode: notifications wait in asyncua's bounded queue
        queue_maxsize=config.queue_size,
        # A full queue means the source fell far behind; dropping a notification
        # would leave a stale value in its cache (a door shown shut for hours).
        # Rebuilding the session re-reads every value instead.
        overflow=OverflowPolicy.DISCONNECT,
    )
    nodes = [client.get_node(node_id) for node_id in fields]
    results = await subscription.subscribe_data_change(
        nodes, sampling_interval=ua.Double(config.sampling_interval_ms), queuesize=1
    )
    failed = [
        f"{wanted[fields[node.nodeid]]} ({ua.StatusCode(r.value).name})"
        for node, r in zip(nodes, results, strict=True)
        if isinstance(r, ua.StatusCode)
    ]
    if failed:
        raise OpcUaConnectError(f"cannot monitor {', '.join(failed)}: check the node ids")
    return Session(client, subscription, fields)


async def open_session(config: OpcUaControllerConfig, on_lost: OnLost) -> Session:
    """Connect, activate a session and subscribe, all within ``connect_timeout_s``."""
    client = Client(
        config.endpoint,
        timeout=config.request_timeout_s,
        watchdog_intervall=config.keepalive_interval_s,
    )
    client.name = client.description = f"Shelflink gateway ({config.device_id})"
    client.application_uri = DEFAULT_APPLICATION_URI
    client.session_timeout = round(config.session_timeout_s * 1000)
    client.connection_lost_callback = on_lost
    if config.username is not None and config.password is not None:
        client.set_user(config.username)
        client.set_password(config.password.get_secret_value())
    try:
        async with asyncio.timeout(config.connect_timeout_s):
            if config.security_policy == "Basic256Sha256":
                await _secure(client, config)
            await client.connect(auto_reconnect=False)
            return await _subscribe(client, config)
    except OpcUaConnectError:
        await close_session(client, config.request_timeout_s, alive=False)
        raise
    except Exception as exc:  # every asyncua failure ends here, translated
        await close_session(client, config.request_timeout_s, alive=False)
        detail, refused = describe(exc)
        raise OpcUaConnectError(detail, refused=refused) from exc
    except BaseException:  # cancelled: leave no socket or asyncua task behind
        await close_session(client, config.request_timeout_s, alive=False)
        raise


async def close_session(client: Client, timeout_s: float, *, alive: bool) -> None:
    """Close politely when the server is there (``alive``), else just drop the socket.

    ``Client.disconnect`` on a dead connection logs a traceback per attempt;
    a gateway reconnecting all night should not.
    """
    try:
        async with asyncio.timeout(timeout_s):
            if alive:
                await client.disconnect()
            else:
                await client.close_session()  # also stops asyncua's watchdog tasks
    except Exception as exc:
        log.debug("closing the OPC UA session: %s", describe(exc)[0])
    finally:
        client.disconnect_socket()
        # After a DISCONNECT overflow asyncua marks the client disconnected while
        # its socket is still open, and disconnect_socket() then does nothing.
        protocol = client.uaclient.protocol
        if protocol is not None and not protocol.is_closed:
            protocol.disconnect_socket()
