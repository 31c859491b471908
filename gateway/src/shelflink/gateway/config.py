"""The per-store gateway configuration, read from one TOML file.

Every key is documented with an example in docs/gateway.md. Unknown keys are
errors: a misspelt ``max_bytes`` in an unattended box's config should stop it
at start, loudly, not be ignored for a year.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shelflink.device import DeviceKind, Limits
from shelflink.device.gtin import is_valid_gtin
from shelflink.device.models import MAX_LANES
from shelflink.device.topics import ID_PATTERN
from shelflink.edge.config import EdgeConfig
from shelflink.gateway.opcua_config import OpcUaControllerConfig

Id = Annotated[str, Field(pattern=ID_PATTERN)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LaneConfig(_Section):
    """One lane of a shelf: the planogram entry the edge needs to turn grams into units."""

    gtin: str
    unit_g: Annotated[float, Field(gt=0, le=50_000)]
    capacity: Annotated[int, Field(ge=1, le=10_000)]

    @model_validator(mode="after")
    def _gtin(self) -> Self:
        if not is_valid_gtin(self.gtin):
            raise ValueError(f"gtin {self.gtin!r} is not a valid GTIN")
        return self


class DeviceConfig(_Section):
    id: Id
    kind: DeviceKind
    lanes: list[LaneConfig] = Field(default_factory=list, max_length=MAX_LANES)

    @model_validator(mode="after")
    def _lanes(self) -> Self:
        if self.kind is DeviceKind.SHELF and not self.lanes:
            raise ValueError(f"shelf {self.id} needs its [[devices.lanes]]")
        if self.kind is not DeviceKind.SHELF and self.lanes:
            raise ValueError(f"{self.kind.value} {self.id} has no lanes")
        return self


class BrokerConfig(_Section):
    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    # The password is read from this environment variable, so the TOML file
    # (often in a config-management repo) holds no secret.
    password_env: str | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive_s: Annotated[int, Field(ge=5, le=600)] = 30

    def password(self) -> str | None:
        if self.password_env is None:
            return None
        value = os.environ.get(self.password_env)
        if value is None:
            raise ConfigError(f"broker.password_env names {self.password_env}, which is not set")
        return value


class BufferConfig(_Section):
    path: Path = Path("buffer.sqlite")
    max_bytes: Annotated[int, Field(ge=1 << 20)] = 256 << 20
    high_water: Annotated[float, Field(gt=0, lt=1)] = 0.8
    low_water: Annotated[float, Field(gt=0, lt=1)] = 0.7

    @model_validator(mode="after")
    def _marks(self) -> Self:
        if self.low_water >= self.high_water:
            raise ValueError("buffer.low_water must be below buffer.high_water")
        return self


class DeadLetterConfig(_Section):
    path: Path = Path("dead_letter.sqlite")
    max_rows: Annotated[int, Field(ge=10)] = 10_000
    max_raw_bytes: Annotated[int, Field(ge=64, le=1 << 20)] = 4096
    # Held readings of a reset device are counted apart from rejections, so that
    # no flood of bad input can push them out.
    max_held_rows: Annotated[int, Field(ge=10)] = 100_000


class HealthConfig(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 9108


class LimitsConfig(_Section):
    max_payload_bytes: Annotated[int, Field(ge=256, le=1 << 20)] = 16_384
    max_future_skew_s: Annotated[int, Field(ge=0)] = 300
    max_age_days: Annotated[int, Field(ge=1)] = 30

    def limits(self) -> Limits:
        return Limits(
            max_payload_bytes=self.max_payload_bytes,
            max_future_skew_ms=self.max_future_skew_s * 1000,
            max_age_ms=self.max_age_days * 86_400_000,
        )


class SequenceConfig(_Section):
    gap_grace_s: Annotated[float, Field(gt=0)] = 30.0
    # Sequence files for devices that have none of their own (OPC UA controllers)
    # and for the gateway's own events.
    state_dir: Path = Path("sequences")


class UplinkConfig(_Section):
    """The northbound link to the cloud broker and how the buffer is drained: docs/uplink.md."""

    url: str  # the cloud broker, mqtt:// or mqtts://; no default: it is never the store broker
    # None means the gateway id: the cloud broker's ACL knows a gateway by it.
    username: str | None = None
    password_env: str | None = None  # read from the environment, like [broker]
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive_s: Annotated[int, Field(ge=5, le=600)] = 30
    reconnect_max_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    # A batch is at most max_records records and max_bytes of protobuf before
    # compression (one bigger record still goes alone), or whatever waited linger_s.
    max_records: Annotated[int, Field(ge=1, le=100_000)] = 2000
    max_bytes: Annotated[int, Field(ge=1024, le=8 << 20)] = 256 << 10
    linger_s: Annotated[float, Field(ge=0, le=60)] = 1.0
    window: Annotated[int, Field(ge=1, le=1024)] = 8  # batches sent and not yet acked
    ack_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 10.0
    ack_timeout_max_s: Annotated[float, Field(gt=0, le=3600)] = 300.0
    # Records older than replay_after_s are backlog: sent at most at these rates.
    replay_after_s: Annotated[float, Field(ge=0)] = 60.0
    replay_max_batches_per_s: Annotated[float, Field(gt=0)] | None = 10.0
    replay_max_bytes_per_s: Annotated[int, Field(ge=1024)] | None = None

    @model_validator(mode="after")
    def _timeouts(self) -> Self:
        if self.ack_timeout_max_s < self.ack_timeout_s:
            raise ValueError("uplink.ack_timeout_max_s must not be below uplink.ack_timeout_s")
        return self

    def password(self) -> str | None:
        if self.password_env is None:
            return None
        value = os.environ.get(self.password_env)
        if value is None:
            raise ConfigError(f"uplink.password_env names {self.password_env}, which is not set")
        return value


class GatewayConfig(_Section):
    store_id: Id
    gateway_id: Id
    broker: BrokerConfig = BrokerConfig()
    buffer: BufferConfig = BufferConfig()
    dead_letter: DeadLetterConfig = DeadLetterConfig()
    health: HealthConfig = HealthConfig()
    limits: LimitsConfig = LimitsConfig()
    sequence: SequenceConfig = SequenceConfig()
    devices: list[DeviceConfig] = Field(default_factory=list)
    opcua: list[OpcUaControllerConfig] = Field(default_factory=list)
    uplink: UplinkConfig | None = None  # None: no cloud link (a lab gateway)
    edge: EdgeConfig = EdgeConfig()  # features, stock-out model, cold chain: docs/edge.md
    log_format: Literal["json", "text"] = "json"

    @model_validator(mode="after")
    def _unique_devices(self) -> Self:
        ids = [d.id for d in self.devices] + [c.device_id for c in self.opcua]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"device ids configured twice: {', '.join(repeated)}")
        return self

    def resolve_paths(self, base: Path) -> GatewayConfig:
        """Relative paths in the file are relative to the file's folder."""

        def at(path: Path) -> Path:
            return path if path.is_absolute() else base / path

        def certs(section: BaseModel) -> dict[str, Path]:
            names = ("ca_file", "cert_file", "key_file")
            return {n: at(getattr(section, n)) for n in names if getattr(section, n) is not None}

        update: dict[str, object] = {}
        if self.uplink is not None:
            update["uplink"] = self.uplink.model_copy(update=certs(self.uplink))
        return self.model_copy(
            update={
                **update,
                "broker": self.broker.model_copy(update=certs(self.broker)),
                "buffer": self.buffer.model_copy(update={"path": at(self.buffer.path)}),
                "dead_letter": self.dead_letter.model_copy(
                    update={"path": at(self.dead_letter.path)}
                ),
                "sequence": self.sequence.model_copy(
                    update={"state_dir": at(self.sequence.state_dir)}
                ),
                "edge": self.edge.resolve_paths(base),
            }
        )


class ConfigError(ValueError):
    """The configuration file is missing, not TOML, or not a valid gateway config."""


def load_config(path: Path) -> GatewayConfig:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        config = GatewayConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None
    return config.resolve_paths(path.resolve().parent)
