"""The simulated controller's certificates: its own, made at startup, and the clients it trusts.

The server's key and certificate live in a folder and are reused while valid,
so a restarted server keeps its identity and gateways that pinned its
certificate reconnect. Clients are trusted by exact certificate (SHA-256
fingerprint), the way an operator accepts a gateway on a real controller:
copy its certificate into ``<cert-dir>/trusted/``.
"""

from __future__ import annotations

import logging
import shutil
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from asyncua import ua
from asyncua.common.utils import ServiceError
from asyncua.crypto import uacrypto
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.ua.status_codes import StatusCodes
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shelflink.sim.opcua_layout import APPLICATION_URI

log = logging.getLogger("shelflink.sim.opcua")

SERVER_CERT: Final = "server-cert.der"
SERVER_KEY: Final = "server-key.pem"
TRUSTED: Final = "trusted"
_CERT_SUFFIXES: Final = frozenset({".der", ".pem", ".crt"})


async def ensure_server_certificate(cert_dir: Path) -> tuple[Path, Path]:
    """The server's (certificate, key) in ``cert_dir`` (see :func:`prepare`), made now
    if missing or no longer valid."""
    cert, key = cert_dir / SERVER_CERT, cert_dir / SERVER_KEY
    await setup_self_signed_certificate(
        key,
        cert,
        APPLICATION_URI,
        socket.gethostname(),
        # A controller is a server; some clients also check CLIENT_AUTH on the
        # peer's certificate when it signs requests, so it carries both.
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        {"organizationName": "Shelflink simulator"},
    )
    return cert, key


def prepare(cert_dir: Path, trusted: Iterable[Path] = ()) -> None:
    """Make ``cert_dir`` and ``cert_dir/trusted``, and copy client certificates into
    the latter (what an operator does by hand on a real controller)."""
    folder = cert_dir / TRUSTED
    folder.mkdir(parents=True, exist_ok=True)
    for certificate in trusted:
        shutil.copyfile(certificate, folder / certificate.name)


def fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()


def _common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else "?"


class TrustedClients:
    """asyncua's certificate validator hook: well-formed, in date, and trusted by fingerprint.

    asyncua's own TrustStore logs a traceback for every refused attempt; a
    gateway retrying with backoff would fill the log. This says it once per
    certificate.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._fingerprints: frozenset[str] = frozenset()
        self._refused: set[str] = set()
        # Time range, application URI against the certificate, key usages, and a
        # client's extended key usage: what OPC UA Part 4 asks of a client cert.
        self._basic = CertificateValidator(
            CertificateValidatorOptions.EXT_VALIDATION | CertificateValidatorOptions.PEER_CLIENT
        )

    async def load(self) -> int:
        """(Re)read the trusted folder; returns how many certificates it holds."""
        found: set[str] = set()
        for path in sorted(self.folder.glob("*")):
            if path.suffix.lower() not in _CERT_SUFFIXES:
                continue
            try:
                found.add(fingerprint(await uacrypto.load_certificate(path)))
            except ValueError:
                log.warning("ignoring %s in the trusted folder: not a certificate", path.name)
        self._fingerprints = frozenset(found)
        return len(found)

    async def __call__(
        self, certificate: x509.Certificate, app_description: ua.ApplicationDescription
    ) -> None:
        print_ = fingerprint(certificate)
        try:
            await self._basic.validate(certificate, app_description)
            if print_ not in self._fingerprints:
                raise ServiceError(StatusCodes.BadCertificateUntrusted)
        except ServiceError as exc:
            if print_ not in self._refused:
                self._refused.add(print_)
                log.warning(
                    "refused client certificate CN=%s sha256=%s: %s (trusted: %s)",
                    _common_name(certificate),
                    print_,
                    ua.StatusCode(ua.UInt32(exc.code)).name,
                    self.folder,
                )
            raise
