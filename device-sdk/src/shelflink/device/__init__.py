"""Shelflink device SDK: the v1 wire contract and the device clients."""

from shelflink.device._version import __version__
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
from shelflink.device.topics import Channel, DeviceTopic, parse_topic, topic

__all__ = [
    "DEFAULT_LIMITS",
    "BrokerAddress",
    "Channel",
    "Command",
    "ContractError",
    "DeviceIdentity",
    "DeviceKind",
    "DeviceMessage",
    "DeviceTopic",
    "FridgeReading",
    "GoodsReceipt",
    "Limits",
    "Reason",
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
