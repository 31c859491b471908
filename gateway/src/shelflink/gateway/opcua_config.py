"""How the gateway reaches one OPC UA refrigeration controller: one ``[[opcua]]`` table.

Checked when the store's TOML file is loaded, so a typo in a node id or a
missing certificate path is a startup error with the field's name, not a
reconnect loop at night. docs/opcua.md documents every key with an example.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Self
from urllib.parse import urlparse

from asyncua import ua
from asyncua.ua.uaerrors import UaStringParsingError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)

from shelflink.device.models import DeviceId
from shelflink.device.topics import ID_PATTERN

StoreId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Seconds = Annotated[float, Field(gt=0.0, le=3600.0)]


def parse_node_id(text: str) -> ua.NodeId:
    """``ns=2;s=fridge-01.CabinetTemperature`` or ``nsu=<namespace uri>;s=...``.

    The ``nsu=`` form survives a server that registers its namespaces in
    another order; the source resolves it against the server's namespace array.
    """
    try:
        return ua.NodeId.from_string(text)
    except UaStringParsingError as exc:
        raise ValueError(
            f"{text!r} is not an OPC UA node id (e.g. ns=2;s=fridge-01.Alarm)"
        ) from exc


def _node_id(text: str) -> str:
    parse_node_id(text)
    return text


class OpcUaFridgeNodes(BaseModel):
    """The controller's variable behind each field of a fridge reading."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cabinet_c: str  # Double, °C
    evaporator_c: str  # Double, °C
    door_open: str  # Boolean
    compressor_on: str  # Boolean
    defrost_on: str  # Boolean
    # Boolean. Not part of a reading: the source tracks it (``alarm``) and logs changes.
    alarm: str | None = None

    @field_validator("*")
    @classmethod
    def _parses(cls, value: str | None) -> str | None:
        return None if value is None else _node_id(value)

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        ids = [v for v in self.model_dump().values() if v is not None]
        if len(set(ids)) != len(ids):
            raise ValueError("each field needs its own node id")
        return self


class OpcUaControllerConfig(BaseModel):
    """One controller (one fridge) behind one OPC UA endpoint."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device_id: DeviceId  # the id its readings carry, as for an MQTT fridge
    store_id: StoreId
    endpoint: str  # opc.tcp://host:port/path
    security_policy: Literal["None", "Basic256Sha256"] = "None"
    security_mode: Literal["Sign", "SignAndEncrypt"] = "SignAndEncrypt"
    client_certificate: Path | None = None  # DER or PEM; its URI SAN is our application URI
    client_private_key: Path | None = None  # PEM
    client_private_key_password: SecretStr | None = None
    # The controller's certificate, pinned. Without it the source takes whatever
    # certificate the endpoint presents (trust on first use) and says so in the log.
    server_certificate: Path | None = None
    username: str | None = None
    password: SecretStr | None = None
    nodes: OpcUaFridgeNodes
    # How often the server samples each variable, and how often it sends what
    # changed; changes within one publishing interval become one reading.
    sampling_interval_ms: Annotated[float, Field(ge=0.0, le=3_600_000.0)] = 250.0
    publishing_interval_ms: Annotated[float, Field(ge=10.0, le=3_600_000.0)] = 500.0
    connect_timeout_s: Seconds = 10.0
    request_timeout_s: Seconds = 4.0  # each OPC UA request
    session_timeout_s: Annotated[float, Field(ge=10.0, le=86_400.0)] = 60.0
    # The client reads the server's state this often; a failed read is a dead session.
    keepalive_interval_s: Seconds = 1.0
    reconnect_initial_s: Seconds = 0.5
    reconnect_max_s: Seconds = 30.0
    # Notifications buffered between asyncua and the source. If it ever fills
    # the session is rebuilt (values re-read) rather than changes silently lost.
    queue_size: Annotated[int, Field(ge=16, le=100_000)] = 1000

    @field_validator("endpoint")
    @classmethod
    def _opc_tcp(cls, value: str) -> str:
        url = urlparse(value)
        if url.scheme != "opc.tcp" or not url.hostname:
            raise ValueError(f"{value!r} is not an opc.tcp://host:port/... endpoint")
        try:
            url.port  # noqa: B018 - raises on a malformed port
        except ValueError as exc:
            raise ValueError(f"{value!r} has an invalid port") from exc
        if url.username or url.password:
            raise ValueError("put credentials in username/password, not in the endpoint")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        has_cert = self.client_certificate is not None or self.client_private_key is not None
        if self.security_policy == "None":
            if has_cert or self.server_certificate is not None:
                raise ValueError("certificates are set but security_policy is None")
        elif self.client_certificate is None or self.client_private_key is None:
            raise ValueError(
                f"security_policy {self.security_policy} needs client_certificate "
                "and client_private_key"
            )
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must not be below reconnect_initial_s")
        return self
