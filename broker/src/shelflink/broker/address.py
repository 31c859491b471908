"""Broker addresses: the ``mqtt://[user:password@]host:port`` form used across Shelflink."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

DEFAULT_MQTT_PORT = 1883


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        if parts.scheme != "mqtt":
            raise ValueError(f"expected an mqtt:// URL, got {url!r}")
        if not parts.hostname:
            raise ValueError(f"no host in broker URL {url!r}")
        return cls(
            host=parts.hostname,
            port=parts.port or DEFAULT_MQTT_PORT,
            username=unquote(parts.username) if parts.username is not None else None,
            password=unquote(parts.password) if parts.password is not None else None,
        )

    @property
    def url(self) -> str:
        """The URL without credentials: safe to print and log."""
        return f"mqtt://{self.host}:{self.port}"
