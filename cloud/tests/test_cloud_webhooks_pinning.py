"""Webhook connections go to the address that was checked: one lookup per connection,
every answer checked, the connection made to that answer (not to a second lookup),
the URL's host name kept for the Host header, SNI and the certificate check; and
redirects are not followed.

Host names under ``.invalid`` never resolve through the system, so a request that
reaches a receiver by such a name can only have gone through the injected resolver.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cloud.tests.test_cloud_api_harness import build_world, new_order
from cloud.tests.test_cloud_webhooks_receiver import (
    Receiver,
    fast_options,
    register,
    running,
    settle,
)
from shelflink.cloud.database import Connection
from shelflink.cloud.webhooks_dispatcher import WebhookDispatcher
from shelflink.cloud.webhooks_targets import (
    IPAddress,
    RefusedTarget,
    TargetPolicy,
    is_public,
    resolve_target,
)
from shelflink.cloud.webhooks_transport import PinnedTransport

LOOPBACK = ipaddress.ip_network("127.0.0.1/32")


@dataclass
class ScriptedResolver:
    """Answers each host's lists in turn (the last one again and again) and records
    every lookup; a host it does not know does not resolve."""

    answers: Mapping[str, Sequence[Sequence[str]]]
    lookups: list[tuple[str, int]] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        turn = sum(1 for looked_up, _ in self.lookups if looked_up == host)
        self.lookups.append((host, port))
        if host not in self.answers:
            raise OSError(f"{host} is not known")
        script = self.answers[host]
        return [ipaddress.ip_address(a) for a in script[min(turn, len(script) - 1)]]


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.215.14", True),
        ("2606:4700::6810:84e5", True),
        ("127.0.0.1", False),
        ("10.0.0.7", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("169.254.169.254", False),  # the cloud metadata address
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("::1", False),
        ("fe80::1", False),
        ("fd00::1", False),
        ("fec0::1", False),  # site-local, which Python calls global
        ("ff02::1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:93.184.215.14", True),
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of the metadata address
        ("64:ff9b::5db8:d70e", True),  # NAT64 of a public address
        ("2002:a00:1::", False),  # 6to4 of 10.0.0.1
    ],
)
def test_only_public_addresses_are_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


def test_allowed_networks_permit_only_themselves() -> None:
    policy = TargetPolicy(allowed_networks=(ipaddress.ip_network("10.20.0.0/16"),))
    assert policy.permits(ipaddress.ip_address("10.20.3.4"))
    assert policy.permits(ipaddress.ip_address("::ffff:10.20.3.4"))
    assert policy.permits(ipaddress.ip_address("93.184.215.14"))
    assert not policy.permits(ipaddress.ip_address("10.21.0.1"))
    assert not policy.permits(ipaddress.ip_address("169.254.169.254"))
    assert TargetPolicy(allow_private=True).permits(ipaddress.ip_address("169.254.169.254"))


async def test_every_answer_is_checked_and_literals_are_not_looked_up() -> None:
    resolver = ScriptedResolver(
        {"mixed.example": [["93.184.215.14", "10.0.0.7"]], "ok.example": [["93.184.215.14"]]}
    )
    policy = TargetPolicy()
    with pytest.raises(RefusedTarget, match=r"resolves to 10\.0\.0\.7"):
        await resolve_target("mixed.example", 443, policy=policy, resolver=resolver)
    assert await resolve_target("ok.example", 443, policy=policy, resolver=resolver) == [
        ipaddress.ip_address("93.184.215.14")
    ]
    with pytest.raises(RefusedTarget, match="::1 is not a public address"):
        await resolve_target("[::1]", 443, policy=policy, resolver=resolver)
    with pytest.raises(OSError, match="not known"):
        await resolve_target("gone.example", 443, policy=policy, resolver=resolver)
    assert [host for host, _ in resolver.lookups] == ["mixed.example", "ok.example", "gone.example"]


@dataclass
class RawServer:
    """What a raw HTTP/1.1 server on loopback saw: request heads and TLS server names."""

    port: int = 0
    heads: list[bytes] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)


@contextlib.asynccontextmanager
async def answering(response: bytes, tls: ssl.SSLContext | None = None) -> AsyncIterator[RawServer]:
    """Serve ``response`` to every request on a free loopback port, over TLS with ``tls``."""
    seen = RawServer()
    if tls is not None:
        tls.sni_callback = lambda _sock, name, _context: seen.server_names.append(name)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            seen.heads.append(await reader.readuntil(b"\r\n\r\n"))
            writer.write(response)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass  # the client gave up, e.g. on our certificate
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=tls)
    seen.port = server.sockets[0].getsockname()[1]
    async with server:
        yield seen


async def test_a_rebinding_name_is_delivered_to_its_checked_address_only(
    db: Connection, migrated_database_url: str
) -> None:
    await build_world(db)
    async with running(Receiver()) as receiver:
        port = int(receiver.url.rsplit(":", 1)[1].split("/")[0])
        pinned = f"http://hooks.north.invalid:{port}/hooks"
        redirect = f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {pinned}\r\n"
        async with answering(f"{redirect}Content-Length: 0\r\n\r\n".encode()) as redirector:
            resolver = ScriptedResolver(
                {
                    # Loopback to the check and to the connection, then the metadata
                    # address to any later lookup: a second lookup would be refused.
                    "hooks.north.invalid": [["127.0.0.1"], ["169.254.169.254"]],
                    "mixed.north.invalid": [["127.0.0.1", "10.0.0.7"]],
                    "moved.north.invalid": [["127.0.0.1"]],
                }
            )
            await register(db, "north", pinned)
            await register(db, "north", f"http://mixed.north.invalid:{port}/hooks")
            await register(db, "north", f"http://moved.north.invalid:{redirector.port}/")
            await new_order(db)
            options = fast_options(
                allow_private_targets=False,
                allowed_networks=(LOOPBACK,),
                resolver=resolver,
                max_attempts=1,
            )
            async with WebhookDispatcher(migrated_database_url, options) as dispatcher:
                await settle(dispatcher, db)

    (request,) = receiver.received
    assert request.headers["host"] == f"hooks.north.invalid:{port}"
    assert sorted(resolver.lookups) == [
        ("hooks.north.invalid", port),
        ("mixed.north.invalid", port),
        ("moved.north.invalid", redirector.port),
    ]
    assert len(redirector.heads) == 1  # answered 307, and the dispatcher stopped there
    cur = await db.execute(
        "SELECT e.url, d.state, a.status_code, a.error FROM webhook_deliveries d"
        " JOIN webhook_attempts a USING (delivery_id)"
        " JOIN webhook_endpoints e USING (webhook_id) ORDER BY e.webhook_id"
    )
    delivered, mixed, moved = await cur.fetchall()
    assert delivered == (pinned, "delivered", 200, None)
    assert mixed[1:3] == ("dead", None)
    assert "refused" in mixed[3] and "10.0.0.7" in mixed[3]
    assert moved[1:] == ("dead", 307, None)


def _tls_contexts(folder: Path, host: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A throwaway CA and a certificate for ``host`` only (no IP address in it): the
    server's context and a client context that trusts the CA."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Shelflink test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (folder / "cert.pem").write_bytes(certificate.public_bytes(pem))
    (folder / "key.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    client = ssl.create_default_context(cadata=ca.public_bytes(pem).decode())
    return server, client


async def test_tls_checks_the_certificate_against_the_host_name_not_the_address(
    tmp_path: Path,
) -> None:
    server_tls, client_tls = _tls_contexts(tmp_path, "hooks.north.invalid")
    both_loopback = {"hooks.north.invalid": [["127.0.0.1"]], "other.north.invalid": [["127.0.0.1"]]}
    transport = PinnedTransport(
        TargetPolicy(allowed_networks=(LOOPBACK,)),
        ScriptedResolver(both_loopback),
        verify=client_tls,
    )
    ok = b"HTTP/1.1 204 No Content\r\n\r\n"
    async with (
        answering(ok, server_tls) as server,
        httpx.AsyncClient(transport=transport) as client,
    ):
        answer = await client.post(
            f"https://hooks.north.invalid:{server.port}/hooks", content=b"{}"
        )
        assert answer.status_code == 204
        # Same address, a name the certificate does not cover: refused by the client.
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.post(f"https://other.north.invalid:{server.port}/hooks", content=b"{}")
    assert server.server_names[0] == "hooks.north.invalid"
    assert server.server_names[1:] == ["other.north.invalid"]
    assert b"\r\nhost: hooks.north.invalid:" in server.heads[0].lower()
