"""Who a device is and how it reaches its broker."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from shelflink.device.models import DeviceKind
from shelflink.device.topics import Channel, is_valid_id, topic


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    store_id: str
    device_id: str
    kind: DeviceKind
    firmware: str = "0.0.0"
    lanes: int | None = None  # shelves only
    interval_ms: int = 10_000

    def __post_init__(self) -> None:
        for name in ("store_id", "device_id"):
            value = getattr(self, name)
            if not is_valid_id(value):
                raise ValueError(f"{name} {value!r} is not a valid id")
        if (self.kind is DeviceKind.SHELF) != (self.lanes is not None):
            raise ValueError("lanes is required for shelves and only for shelves")

    def topic(self, channel: Channel) -> str:
        return topic(self.store_id, self.device_id, channel)


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """Server verification against ``ca_file``; a client certificate is optional."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure_skip_verify: bool = False

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(
            cafile=str(self.ca_file) if self.ca_file is not None else None
        )
        if self.cert_file is not None:
            context.load_cert_chain(
                str(self.cert_file), str(self.key_file) if self.key_file is not None else None
            )
        if self.insecure_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Parsed ``mqtt://[user[:password]@]host[:port]`` or ``mqtts://...`` (TLS)."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"broker URL {url!r}: scheme must be mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError(f"broker URL {url!r} has no host")
        tls = parts.scheme in ("mqtts", "ssl")
        return cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )
