"""Both clients over TLS with a client certificate and a password, against a real Mosquitto.

Certificates come from the openssl command line; the test is skipped where
Mosquitto or openssl is missing (the embedded broker has no TLS listener).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from test_device_client_tap import new_identity, reading, unused_port

from conftest import find_mosquitto
from shelflink.device import (
    AsyncDeviceClient,
    DeviceClient,
    DeviceTimeoutError,
    SequenceStore,
    TlsSettings,
)
from shelflink.device.backoff import Backoff

WAIT_S = 10.0
USER, PASSWORD = "device-maker", "s3cret:with@odd/chars"


@dataclass(frozen=True)
class TlsBroker:
    port: int
    ca: Path
    client_cert: Path
    client_key: Path

    def url(self, password: str = PASSWORD) -> str:
        return f"mqtts://{USER}:{quote(password, safe='')}@localhost:{self.port}"

    def tls(self, *, with_client_cert: bool = True) -> TlsSettings:
        if not with_client_cert:
            return TlsSettings(ca_file=self.ca)
        return TlsSettings(ca_file=self.ca, cert_file=self.client_cert, key_file=self.client_key)


def openssl(folder: Path, arguments: str) -> None:
    command = ["openssl", *arguments.split()]
    subprocess.run(command, cwd=folder, check=True, capture_output=True, timeout=60)


def issue(folder: Path, name: str, subject: str, extensions: str | None = None) -> None:
    """A key and a certificate signed by the test CA in ``folder``."""
    request = f"req -newkey rsa:2048 -nodes -keyout {name}.key -out {name}.csr"
    openssl(folder, f"{request} -subj {subject}")
    signing = f"x509 -req -in {name}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 1"
    if extensions is not None:
        (folder / f"{name}.ext").write_text(extensions)
        signing += f" -extfile {name}.ext"
    openssl(folder, f"{signing} -out {name}.crt")


def listening(port: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"the TLS broker is not listening on {port}"
            time.sleep(0.05)


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[TlsBroker]:
    mosquitto = find_mosquitto()
    passwd = shutil.which("mosquitto_passwd")
    if not (mosquitto and passwd and shutil.which("openssl")):
        pytest.skip("needs mosquitto, mosquitto_passwd and openssl")
    ca = "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 1"
    openssl(tmp_path, f"{ca} -subj /CN=shelflink-test-ca")
    issue(tmp_path, "server", "/CN=localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    issue(tmp_path, "client", "/CN=a-device")
    subprocess.run([passwd, "-b", "-c", str(tmp_path / "passwords"), USER, PASSWORD], check=True)
    port = unused_port()
    conf = tmp_path / "mosquitto.conf"
    lines = [
        f"listener {port} 127.0.0.1",
        f"cafile {tmp_path / 'ca.crt'}",
        f"certfile {tmp_path / 'server.crt'}",
        f"keyfile {tmp_path / 'server.key'}",
        "require_certificate true",
        "allow_anonymous false",
        f"password_file {tmp_path / 'passwords'}",
    ]
    if os.geteuid() == 0:
        lines.append("user root")  # else it drops to 'mosquitto', who cannot read tmp_path
    conf.write_text("\n".join(lines) + "\n")
    with open(tmp_path / "broker.log", "wb") as log:
        broker = subprocess.Popen([mosquitto, "-c", str(conf), "-v"], stdout=log, stderr=log)
    try:
        listening(port)
        yield TlsBroker(port, tmp_path / "ca.crt", tmp_path / "client.crt", tmp_path / "client.key")
    finally:
        broker.terminate()
        broker.wait(timeout=10)


def quick_backoff() -> Backoff:
    return Backoff(initial_s=0.05, maximum_s=0.2)


async def test_the_async_client_connects_with_tls_a_client_cert_and_a_password(
    tls_broker: TlsBroker, tmp_path: Path
) -> None:
    identity = new_identity()
    client = AsyncDeviceClient(
        identity, tls_broker.url(), SequenceStore(tmp_path / "seq"), tls=tls_broker.tls()
    )
    async with client:
        await client.wait_connected(WAIT_S)
        await client.publish(reading(identity, client.next_seq()))
    assert client.stats.published == 1


def test_the_threaded_client_connects_with_tls_a_client_cert_and_a_password(
    tls_broker: TlsBroker, tmp_path: Path
) -> None:
    identity = new_identity()
    client = DeviceClient(
        identity, tls_broker.url(), SequenceStore(tmp_path / "seq"), tls=tls_broker.tls()
    )
    with client:
        client.wait_connected(WAIT_S)
        client.publish(reading(identity, client.next_seq()))
        client.flush(WAIT_S)
    assert client.stats.published == 1


async def test_refused_credentials_or_certificate_keep_the_client_retrying(
    tls_broker: TlsBroker, tmp_path: Path
) -> None:
    identity = new_identity()
    wrong_password = AsyncDeviceClient(
        identity,
        tls_broker.url(password="wrong"),
        SequenceStore(tmp_path / "a"),
        tls=tls_broker.tls(),
        backoff=quick_backoff(),
    )
    no_certificate = DeviceClient(
        identity,
        tls_broker.url(),
        SequenceStore(tmp_path / "b"),
        tls=tls_broker.tls(with_client_cert=False),
        backoff=quick_backoff(),
    )
    async with wrong_password:
        with no_certificate:
            with pytest.raises(DeviceTimeoutError):
                await wrong_password.wait_connected(1.0)
            with pytest.raises(DeviceTimeoutError):
                await asyncio.to_thread(no_certificate.wait_connected, 0.5)
            assert not wrong_password.stats.connected and not no_certificate.stats.connected
