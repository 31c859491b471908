"""The gateway's OPC UA application certificate: ``python -m shelflink.gateway.opcua_certs``.

A controller accepts a gateway by its certificate, so each gateway needs its
own key pair. This makes one (self-signed, with the application URI and host
name that OPC UA expects in it) if it is missing or no longer valid, and
prints what an operator needs to trust it on the controller.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from asyncua.crypto import uacrypto
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID

from shelflink.gateway.opcua_connect import DEFAULT_APPLICATION_URI


def default_application_uri(host_name: str | None = None) -> str:
    """One URI per gateway: controllers tell their clients apart by it."""
    return f"{DEFAULT_APPLICATION_URI}:{host_name or socket.gethostname()}"


async def ensure_client_certificate(
    cert_path: Path,
    key_path: Path,
    *,
    application_uri: str | None = None,
    host_name: str | None = None,
) -> str:
    """Make the key (PEM) and certificate (DER) unless both exist and are valid;
    returns the certificate's SHA-256 fingerprint."""
    host = host_name or socket.gethostname()
    for path in (cert_path, key_path):
        path.parent.mkdir(parents=True, exist_ok=True)
    await setup_self_signed_certificate(
        key_path,
        cert_path,
        application_uri or default_application_uri(host),
        host,
        [ExtendedKeyUsageOID.CLIENT_AUTH],
        {"organizationName": "Shelflink gateway"},
    )
    certificate: x509.Certificate = await uacrypto.load_certificate(cert_path)
    return certificate.fingerprint(hashes.SHA256()).hex()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shelflink.gateway.opcua_certs",
        description="Make this gateway's OPC UA client certificate if it is missing.",
    )
    parser.add_argument("--cert", type=Path, required=True, help="certificate to write (DER)")
    parser.add_argument("--key", type=Path, required=True, help="private key to write (PEM)")
    parser.add_argument("--uri", help="application URI (default urn:shelflink:gateway:<host>)")
    parser.add_argument("--host", help="host name in the certificate (default: this host's)")
    args = parser.parse_args(argv)
    fingerprint = asyncio.run(
        ensure_client_certificate(
            args.cert, args.key, application_uri=args.uri, host_name=args.host
        )
    )
    print(f"certificate {args.cert}\nsha256 {fingerprint}")
    print("trust it on the controller (e.g. copy it into its trusted certificates)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
