"""The MQTT topic scheme between devices and the store broker (contract version v1).

Every topic is ``shelflink/v1/<store_id>/<device_id>/<channel>``. The device id
in the topic is the device's MQTT client id and username, so a broker ACL of
``shelflink/v1/+/%u/#`` confines a device to its own topics, and the gateway
refuses a payload whose ``device`` differs from the topic's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

PREFIX = "shelflink"
VERSION = "v1"

# Ids become topic levels, so they must never contain MQTT wildcards or separators.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
_ID_RE = re.compile(ID_PATTERN)


class Channel(StrEnum):
    """What a topic carries; the last topic level."""

    TELEMETRY = "telemetry"  # device -> gateway: periodic readings (QoS 1)
    EVENT = "event"  # device -> gateway: sales and goods-receipt scans (QoS 1)
    STATUS = "status"  # device -> gateway: retained birth, death and last will (QoS 1)
    COMMAND = "cmd"  # gateway -> device: tare, set interval, reboot (QoS 1)
    REPLY = "reply"  # device -> gateway: the answer to a command (QoS 1)


class TopicError(ValueError):
    """A topic that is not part of the v1 scheme."""


def is_valid_id(value: str) -> bool:
    return _ID_RE.fullmatch(value) is not None


def topic(store_id: str, device_id: str, channel: Channel) -> str:
    for name, value in (("store_id", store_id), ("device_id", device_id)):
        if not is_valid_id(value):
            raise TopicError(f"{name} {value!r} does not match {ID_PATTERN}")
    return f"{PREFIX}/{VERSION}/{store_id}/{device_id}/{channel.value}"


def subscription(store_id: str = "+", device_id: str = "+", channel: str = "+") -> str:
    """A subscription filter; the defaults match every device of every store."""
    return f"{PREFIX}/{VERSION}/{store_id}/{device_id}/{channel}"


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    store_id: str
    device_id: str
    channel: Channel


def parse_topic(value: str) -> DeviceTopic:
    """Split a concrete topic into its parts, or raise :class:`TopicError` saying why."""
    parts = value.split("/")
    if len(parts) != 5:
        raise TopicError(f"expected 5 topic levels, got {len(parts)}")
    prefix, version, store_id, device_id, channel = parts
    if prefix != PREFIX:
        raise TopicError(f"topic prefix {prefix!r} is not {PREFIX!r}")
    if version != VERSION:
        raise TopicError(f"topic version {version!r} is not supported (only {VERSION})")
    if not is_valid_id(store_id):
        raise TopicError(f"store id {store_id!r} does not match {ID_PATTERN}")
    if not is_valid_id(device_id):
        raise TopicError(f"device id {device_id!r} does not match {ID_PATTERN}")
    try:
        kind = Channel(channel)
    except ValueError:
        raise TopicError(f"unknown channel {channel!r}") from None
    return DeviceTopic(store_id, device_id, kind)
