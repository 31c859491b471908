"""The gateway-to-cloud uplink contract (v1): topics and the batch payload framing.

A gateway publishes each :class:`Batch` (QoS 1) on its own batch topic and
waits for a :class:`BatchAck` on its own ack topic; the cloud's ingest workers
share the batch topics through an MQTT 5 shared subscription. The cloud
broker's ACL confines a gateway (username = gateway id) to
``shelflink/v1/uplink/<its id>/#``.

Payload framing: one byte saying how the protobuf bytes that follow are
encoded, so that the compression can change without a contract change.
"""

from __future__ import annotations

import zlib
from enum import IntEnum
from typing import Final

from shelflink.device.proto import batch_pb2 as pb
from shelflink.device.topics import PREFIX, VERSION, is_valid_id

UPLINK: Final = f"{PREFIX}/{VERSION}/uplink"
SHARE_GROUP: Final = "ingest"
# A decompressed batch larger than this is refused (a zip bomb costs nothing to send).
MAX_BATCH_BYTES: Final = 16 * 1024 * 1024


class Encoding(IntEnum):
    PROTOBUF = 0  # the serialized Batch as it is
    ZLIB = 1  # zlib (RFC 1950) of the serialized Batch


class UplinkError(ValueError):
    """A batch payload or topic that is not part of the uplink contract."""


def batch_topic(gateway_id: str) -> str:
    if not is_valid_id(gateway_id):
        raise UplinkError(f"gateway id {gateway_id!r} is not a valid id")
    return f"{UPLINK}/{gateway_id}/batch"


def ack_topic(gateway_id: str) -> str:
    if not is_valid_id(gateway_id):
        raise UplinkError(f"gateway id {gateway_id!r} is not a valid id")
    return f"{UPLINK}/{gateway_id}/ack"


def batch_subscription(shared: bool) -> str:
    """What ingest workers subscribe to: shared among them when the broker can."""
    plain = f"{UPLINK}/+/batch"
    return f"$share/{SHARE_GROUP}/{plain}" if shared else plain


def gateway_of_batch_topic(topic: str) -> str:
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:3]) != UPLINK or parts[4] != "batch":
        raise UplinkError(f"{topic!r} is not a batch topic ({UPLINK}/<gateway>/batch)")
    if not is_valid_id(parts[3]):
        raise UplinkError(f"gateway id {parts[3]!r} in {topic!r} is not a valid id")
    return parts[3]


def frame_batch(body: bytes, encoding: Encoding = Encoding.ZLIB) -> bytes:
    """The MQTT payload for a serialized Batch."""
    if encoding is Encoding.ZLIB:
        return bytes([Encoding.ZLIB]) + zlib.compress(body, 6)
    return bytes([Encoding.PROTOBUF]) + body


def unframe_batch(payload: bytes, max_bytes: int = MAX_BATCH_BYTES) -> pb.Batch:
    """The Batch in an uplink payload, or :class:`UplinkError` saying why not."""
    if not payload:
        raise UplinkError("empty payload")
    kind, body = payload[0], payload[1:]
    if kind == Encoding.ZLIB:
        inflater = zlib.decompressobj()
        try:
            body = inflater.decompress(body, max_bytes + 1)
        except zlib.error as exc:
            raise UplinkError(f"not zlib data: {exc}") from None
        if len(body) > max_bytes or inflater.unconsumed_tail:
            raise UplinkError(f"batch inflates beyond {max_bytes} bytes")
    elif kind != Encoding.PROTOBUF:
        raise UplinkError(f"unknown payload encoding {kind}")
    if len(body) > max_bytes:
        raise UplinkError(f"batch of {len(body)} bytes exceeds {max_bytes}")
    try:
        batch = pb.Batch.FromString(body)
    except Exception as exc:  # protobuf raises DecodeError, and others on odd input
        raise UplinkError(f"not a protobuf Batch: {exc}") from None
    if batch.version != 1:
        raise UplinkError(f"batch version {batch.version} is not supported (v1)")
    return batch
