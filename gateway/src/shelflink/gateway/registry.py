"""Which devices belong to this store, what each may send, and who is online.

The codec checks that a message is well-formed; the registry checks that it is
plausible *for this device*: known, of the kind it was configured as, with the
number of lanes its planogram has. Presence comes from births, deaths and the
time of the last message. Pure: the caller passes ``now_ms``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shelflink.device import (
    ContractError,
    DeviceKind,
    DeviceMessage,
    FridgeReading,
    GoodsReceipt,
    Reason,
    Reply,
    Sale,
    ShelfReading,
    Status,
)
from shelflink.device.topics import DeviceTopic
from shelflink.gateway.config import GatewayConfig

_KIND_OF: dict[type[DeviceMessage], DeviceKind | None] = {
    ShelfReading: DeviceKind.SHELF,
    FridgeReading: DeviceKind.FRIDGE,
    Sale: DeviceKind.SCANNER,
    GoodsReceipt: DeviceKind.SCANNER,
    Status: None,
    Reply: None,
}


class Presence(StrEnum):
    UNKNOWN = "unknown"  # configured, not heard from since the gateway started
    ONLINE = "online"
    OFFLINE = "offline"


@dataclass(slots=True)
class DeviceState:
    device_id: str
    kind: DeviceKind
    lanes: int
    presence: Presence = Presence.UNKNOWN
    last_seen_ms: int | None = None
    boot_id: str | None = None
    firmware: str | None = None


class DeviceRegistry:
    def __init__(self, config: GatewayConfig) -> None:
        self.store_id = config.store_id
        self.devices: dict[str, DeviceState] = {
            d.id: DeviceState(d.id, d.kind, len(d.lanes)) for d in config.devices
        }
        for controller in config.opcua:
            self.devices[controller.device_id] = DeviceState(
                controller.device_id, DeviceKind.FRIDGE, 0
            )

    def check(self, where: DeviceTopic, message: DeviceMessage) -> DeviceState:
        """Raise :class:`ContractError` unless this store's device may send this message."""
        if where.store_id != self.store_id:
            raise ContractError(
                Reason.TOPIC_MISMATCH,
                f"published under store {where.store_id!r}; this gateway serves {self.store_id!r}",
            )
        state = self.devices.get(message.device)
        if state is None:
            raise ContractError(
                Reason.UNKNOWN_DEVICE, f"device {message.device!r} is not configured for this store"
            )
        expected = _KIND_OF[type(message)]
        if isinstance(message, Status):
            expected = message.kind
        if expected is not None and expected is not state.kind:
            raise ContractError(
                Reason.INVALID_VALUE,
                f"{message.device} is configured as a {state.kind.value} but sent {message.type}",
                "type",
            )
        if isinstance(message, ShelfReading) and len(message.grams) != state.lanes:
            raise ContractError(
                Reason.INVALID_VALUE,
                f"{message.device} has {state.lanes} lanes in its planogram "
                f"but reported {len(message.grams)}",
                "grams",
            )
        return state

    def seen(self, state: DeviceState, message: DeviceMessage, now_ms: int) -> None:
        state.last_seen_ms = now_ms
        if isinstance(message, Status):
            state.presence = Presence.ONLINE if message.online else Presence.OFFLINE
            state.boot_id = message.boot_id
            state.firmware = message.firmware
        elif state.presence is not Presence.ONLINE:
            # Data proves the device is up even if its birth was lost.
            state.presence = Presence.ONLINE

    def counts(self) -> dict[Presence, int]:
        counts = dict.fromkeys(Presence, 0)
        for state in self.devices.values():
            counts[state.presence] += 1
        return counts
