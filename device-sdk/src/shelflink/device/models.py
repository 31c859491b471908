"""Payload models of the v1 wire contract between devices and the store gateway.

Every device-originated message carries ``device`` (id), ``seq`` (a per-device
sequence number that is never reused) and ``ts`` (epoch milliseconds, UTC).
Field order here is the order on the wire: docs/protocol.md shows byte-exact
examples produced by :func:`shelflink.device.codec.encode`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shelflink.device.gtin import is_valid_gtin
from shelflink.device.topics import ID_PATTERN

CONTRACT_VERSION: Final = 1
MAX_LANES = 64
SEQ_MAX = 2**63 - 1

DeviceId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
Seq = Annotated[int, Field(ge=0, le=SEQ_MAX)]
EpochMs = Annotated[int, Field(ge=0, le=2**53)]
Grams = Annotated[float, Field(ge=-1_000.0, le=100_000.0)]
BoardCelsius = Annotated[float, Field(ge=-40.0, le=85.0)]
CabinetCelsius = Annotated[float, Field(ge=-40.0, le=60.0)]
# The evaporator coil is heated during defrost, so it may read far above the cabinet.
EvaporatorCelsius = Annotated[float, Field(ge=-60.0, le=80.0)]
Serial = Annotated[str, StringConstraints(pattern=r"^[!-~]{1,64}$")]
Reference = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Quantity = Annotated[int, Field(ge=1, le=10_000)]
IntervalMs = Annotated[int, Field(ge=1_000, le=3_600_000)]


class DeviceKind(StrEnum):
    SHELF = "shelf"
    FRIDGE = "fridge"
    SCANNER = "scanner"


class _Message(BaseModel):
    # strict: "1" is not 1 and 1 is not true; a device that sends the wrong JSON
    # type has a bug that should surface on its first message, not in a report.
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)

    v: Literal[1] = CONTRACT_VERSION
    # Declared here so that every message reads {"v":1,"type":...} first; each
    # subclass narrows it to its own literal.
    type: str


class _DeviceMessage(_Message):
    device: DeviceId
    seq: Seq
    ts: EpochMs


class ShelfReading(_DeviceMessage):
    """One smart shelf: the load on every lane's cell and the board temperature."""

    type: Literal["shelf.reading"] = "shelf.reading"
    # Index i is lane i; null means that lane's cell gave no reading this time.
    grams: Annotated[list[Grams | None], Field(min_length=1, max_length=MAX_LANES)]
    # Load cells drift with temperature, so the shelf reports its own.
    board_c: BoardCelsius


class FridgeReading(_DeviceMessage):
    type: Literal["fridge.reading"] = "fridge.reading"
    cabinet_c: CabinetCelsius
    evaporator_c: EvaporatorCelsius
    door_open: bool
    compressor_on: bool
    defrost_on: bool


class _Scan(_DeviceMessage):
    gtin: str
    # One item, one code: a serialised item is scanned once, so its quantity is 1.
    # Items without a serial code (serial null) may be scanned with any quantity.
    serial: Serial | None
    qty: Quantity

    @model_validator(mode="after")
    def _check_item(self) -> Self:
        if not is_valid_gtin(self.gtin):
            raise ValueError(f"gtin {self.gtin!r} is not a valid GTIN-8/12/13/14")
        if self.serial is not None and self.qty != 1:
            raise ValueError("a serialised item is one item: qty must be 1 when serial is set")
        return self


class Sale(_Scan):
    """A sale scanned at the till."""

    type: Literal["scanner.sale"] = "scanner.sale"
    unit_price_minor: Annotated[int, Field(ge=0, le=1_000_000_000)]
    currency: Currency
    receipt_id: Reference


class GoodsReceipt(_Scan):
    """An item scanned into the backroom from a delivery."""

    type: Literal["scanner.receipt"] = "scanner.receipt"
    delivery_ref: Reference


class Status(_DeviceMessage):
    """Birth (retained, on connect), clean shutdown, or the broker-sent last will.

    ``seq`` here is not consumed: it is the next data sequence number the device
    will use, so the gateway can tell a reboot's skip-forward from lost data.
    """

    type: Literal["status"] = "status"
    online: bool
    cause: Literal["birth", "shutdown", "will"]
    # JSON carries the kind as a string; strict mode would demand the enum itself.
    kind: Annotated[DeviceKind, Field(strict=False)]
    firmware: Annotated[str, StringConstraints(pattern=r"^[!-~]{1,32}$")]
    boot_id: Reference
    interval_ms: IntervalMs
    lanes: Annotated[int, Field(ge=1, le=MAX_LANES)] | None = None


class Reply(_DeviceMessage):
    """A device's answer to a :class:`Command`, correlated by ``id``."""

    type: Literal["reply"] = "reply"
    id: Reference
    ok: bool
    error: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None


class Command(_Message):
    """Gateway to device. A device ignores a command past ``expires`` (it may have
    waited in a broker queue through an outage; a stale reboot is worse than none)."""

    type: Literal["command"] = "command"
    id: Reference
    ts: EpochMs
    expires: EpochMs
    name: Literal["tare", "set_interval", "reboot"]
    lane: Annotated[int, Field(ge=0, lt=MAX_LANES)] | None = None
    interval_ms: IntervalMs | None = None

    @model_validator(mode="after")
    def _check_args(self) -> Self:
        if self.name == "set_interval" and self.interval_ms is None:
            raise ValueError("set_interval needs interval_ms")
        if self.name != "set_interval" and self.interval_ms is not None:
            raise ValueError(f"{self.name} takes no interval_ms")
        if self.name != "tare" and self.lane is not None:
            raise ValueError(f"{self.name} takes no lane")
        if self.expires <= self.ts:
            raise ValueError("expires must be after ts")
        return self


Reading = ShelfReading | FridgeReading
ScanEvent = Sale | GoodsReceipt
DataMessage = ShelfReading | FridgeReading | Sale | GoodsReceipt | Reply
DeviceMessage = DataMessage | Status
