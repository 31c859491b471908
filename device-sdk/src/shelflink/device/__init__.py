"""Shelflink device SDK: the v1 wire contract and the device clients."""

from shelflink.device._version import __version__
from shelflink.device.aio_client import AsyncCommandHandler, AsyncDeviceClient
from shelflink.device.client import CommandHandler, DeviceClient
from shelflink.device.codec import (
    DEFAULT_LIMITS,
    ContractError,
    Limits,
    Reason,
    decode,
    decode_command,
    encode,
)
from shelflink.device.identity import BrokerAddress, DeviceIdentity, TlsSettings
from shelflink.device.models import (
    Command,
    DeviceKind,
    DeviceMessage,
    FridgeReading,
    GoodsReceipt,
    Reply,
    Sale,
    ShelfReading,
    Status,
)
from shelflink.device.sequence import SequenceError, SequenceStore
from shelflink.device.session import (
    ClientClosedError,
    ClientStats,
    CommandOutcome,
    DeviceClientError,
    DeviceTimeoutError,
    MessageDropped,
    MessageRejected,
    Overflow,
    ReentrantClientError,
)
from shelflink.device.topics import Channel, DeviceTopic, parse_topic, topic

__all__ = [
    "DEFAULT_LIMITS",
    "AsyncCommandHandler",
    "AsyncDeviceClient",
    "BrokerAddress",
    "Channel",
    "ClientClosedError",
    "ClientStats",
    "Command",
    "CommandHandler",
    "CommandOutcome",
    "ContractError",
    "DeviceClient",
    "DeviceClientError",
    "DeviceIdentity",
    "DeviceKind",
    "DeviceMessage",
    "DeviceTimeoutError",
    "DeviceTopic",
    "FridgeReading",
    "GoodsReceipt",
    "Limits",
    "MessageDropped",
    "MessageRejected",
    "Overflow",
    "Reason",
    "ReentrantClientError",
    "Reply",
    "Sale",
    "SequenceError",
    "SequenceStore",
    "ShelfReading",
    "Status",
    "TlsSettings",
    "__version__",
    "decode",
    "decode_command",
    "encode",
    "parse_topic",
    "topic",
]
