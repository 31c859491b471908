"""One encoder and one strict decoder for device JSON.

:func:`decode` is what a gateway runs on every MQTT message, so each rejection
carries a stable :class:`Reason` (for counting) and a sentence (for people).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, NoReturn

from pydantic import BaseModel, ValidationError

from shelflink.device.models import (
    CONTRACT_VERSION,
    Command,
    DeviceMessage,
    FridgeReading,
    GoodsReceipt,
    Reply,
    Sale,
    ShelfReading,
    Status,
)
from shelflink.device.topics import Channel, DeviceTopic, TopicError, parse_topic

EXTENSION_PREFIX = "x_"


class Reason(StrEnum):
    """Why a message was rejected. Stable: dashboards and alerts count by these."""

    OVERSIZED = "oversized"
    BAD_TOPIC = "bad_topic"
    MALFORMED = "malformed"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_TYPE = "unknown_type"
    TOPIC_MISMATCH = "topic_mismatch"
    UNKNOWN_FIELD = "unknown_field"
    MISSING_FIELD = "missing_field"
    INVALID_VALUE = "invalid_value"
    OUT_OF_RANGE = "out_of_range"
    NON_FINITE = "non_finite"
    CLOCK_SKEW = "clock_skew"
    # Raised by gateways, not by the codec, but counted under the same names.
    UNKNOWN_DEVICE = "unknown_device"
    DUPLICATE = "duplicate"
    BUFFER_FULL = "buffer_full"


class ContractError(ValueError):
    """A message that breaks the contract; ``reason`` is for counting, ``str()`` for people."""

    def __init__(self, reason: Reason, detail: str, field: str | None = None) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.field = field


@dataclass(frozen=True, slots=True)
class Limits:
    """What a receiver accepts. Defaults suit a store gateway; see docs/protocol.md."""

    max_payload_bytes: int = 16_384
    # A device clock may run a little ahead; more than this is a broken RTC.
    max_future_skew_ms: int = 5 * 60 * 1000
    # Devices buffer while the gateway is away, so old readings are normal;
    # older than this means an unset clock (1970) rather than a long outage.
    max_age_ms: int = 30 * 24 * 3600 * 1000


DEFAULT_LIMITS: Final = Limits()

_TYPES: Final[dict[str, type[BaseModel]]] = {
    "shelf.reading": ShelfReading,
    "fridge.reading": FridgeReading,
    "scanner.sale": Sale,
    "scanner.receipt": GoodsReceipt,
    "status": Status,
    "reply": Reply,
}
_CHANNEL_OF_TYPE: Final[dict[str, Channel]] = {
    "shelf.reading": Channel.TELEMETRY,
    "fridge.reading": Channel.TELEMETRY,
    "scanner.sale": Channel.EVENT,
    "scanner.receipt": Channel.EVENT,
    "status": Channel.STATUS,
    "reply": Channel.REPLY,
}
_RANGE_ERRORS: Final = frozenset(
    {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "too_short", "too_long"}
)


def channel_of(message: DeviceMessage) -> Channel:
    return _CHANNEL_OF_TYPE[message.type]


def encode(message: DeviceMessage | Command) -> bytes:
    """Compact JSON in field-declaration order; nulls are written, never omitted."""
    return message.model_dump_json().encode()


def _reject_constant(name: str) -> NoReturn:
    raise ContractError(Reason.NON_FINITE, f"{name} is not a number JSON allows")


def _check_size(payload: bytes, max_bytes: int) -> None:
    # Checked before anything else is parsed: size is what protects the receiver.
    if len(payload) > max_bytes:
        raise ContractError(Reason.OVERSIZED, f"payload is {len(payload)} bytes, limit {max_bytes}")


# One decoder for every message: json.loads with keyword arguments builds a
# new decoder per call, which costs more than parsing a small reading.
_DECODER: Final = json.JSONDecoder(parse_constant=_reject_constant)


def _parse_object(payload: bytes) -> dict[str, Any]:
    try:
        obj = _DECODER.decode(payload.decode("utf-8"))
    except ContractError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, huge ints
        raise ContractError(Reason.MALFORMED, f"not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ContractError(Reason.MALFORMED, f"expected a JSON object, got {type(obj).__name__}")
    return obj


def contract_error(exc: ValidationError) -> ContractError:
    """The contract's reason for a pydantic validation error (first error wins)."""
    first = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    kind = first["type"]
    where = f"{field}: " if field else ""
    message = f"{where}{first['msg']}"
    if kind == "extra_forbidden":
        return ContractError(Reason.UNKNOWN_FIELD, f"unknown field {field!r}", field)
    if kind == "missing":
        return ContractError(Reason.MISSING_FIELD, f"missing field {field!r}", field)
    if kind == "finite_number":
        return ContractError(Reason.NON_FINITE, message, field)
    if kind in _RANGE_ERRORS:
        return ContractError(Reason.OUT_OF_RANGE, message, field)
    return ContractError(Reason.INVALID_VALUE, message, field)


def _validate(model: type[BaseModel], obj: dict[str, Any]) -> BaseModel:
    # Vendor extensions (x_*) are ignored so that makers can ship diagnostics
    # without a contract change; any other unknown field is an error.
    body = {k: v for k, v in obj.items() if not k.startswith(EXTENSION_PREFIX)}
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise contract_error(exc) from None


def _check_version(obj: dict[str, Any]) -> None:
    version = obj.get("v")
    if version != CONTRACT_VERSION or isinstance(version, bool):
        raise ContractError(
            Reason.UNSUPPORTED_VERSION,
            f"contract version {version!r} is not supported (this receiver speaks v1)",
            "v",
        )


def check_clock(ts: int, now_ms: int, limits: Limits = DEFAULT_LIMITS) -> None:
    if ts > now_ms + limits.max_future_skew_ms:
        ahead_s = (ts - now_ms) / 1000
        raise ContractError(
            Reason.CLOCK_SKEW,
            f"ts is {ahead_s:.0f} s ahead of the receiver's clock "
            f"(limit {limits.max_future_skew_ms / 1000:.0f} s)",
            "ts",
        )
    if ts < now_ms - limits.max_age_ms:
        age_h = (now_ms - ts) / 3_600_000
        raise ContractError(
            Reason.CLOCK_SKEW,
            f"ts is {age_h:.0f} h old (limit {limits.max_age_ms / 3_600_000:.0f} h): "
            "is the device clock set?",
            "ts",
        )


def decode(
    topic: str, payload: bytes, *, now_ms: int, limits: Limits = DEFAULT_LIMITS
) -> tuple[DeviceTopic, DeviceMessage]:
    """Check one device message against the contract, or raise :class:`ContractError`."""
    _check_size(payload, limits.max_payload_bytes)
    try:
        where = parse_topic(topic)
    except TopicError as exc:
        raise ContractError(Reason.BAD_TOPIC, str(exc)) from None
    if where.channel is Channel.COMMAND:
        raise ContractError(Reason.BAD_TOPIC, "devices must not publish on the cmd channel")
    obj = _parse_object(payload)
    _check_version(obj)
    kind = obj.get("type")
    model = _TYPES.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise ContractError(Reason.UNKNOWN_TYPE, f"unknown message type {kind!r}", "type")
    assert isinstance(kind, str)
    if _CHANNEL_OF_TYPE[kind] is not where.channel:
        raise ContractError(
            Reason.TOPIC_MISMATCH,
            f"{kind} belongs on the {_CHANNEL_OF_TYPE[kind].value} channel, "
            f"not {where.channel.value}",
        )
    message = _validate(model, obj)
    assert isinstance(message, ShelfReading | FridgeReading | Sale | GoodsReceipt | Status | Reply)
    if message.device != where.device_id:
        raise ContractError(
            Reason.TOPIC_MISMATCH,
            f"payload device {message.device!r} published on the topic of {where.device_id!r}",
            "device",
        )
    check_clock(message.ts, now_ms, limits)
    return where, message


def decode_command(payload: bytes, *, now_ms: int, limits: Limits = DEFAULT_LIMITS) -> Command:
    """What a device runs on a message from its cmd topic."""
    _check_size(payload, limits.max_payload_bytes)
    obj = _parse_object(payload)
    _check_version(obj)
    if obj.get("type") != "command":
        raise ContractError(Reason.UNKNOWN_TYPE, f"expected a command, got {obj.get('type')!r}")
    command = _validate(Command, obj)
    assert isinstance(command, Command)
    check_clock(command.ts, now_ms, limits)
    return command
