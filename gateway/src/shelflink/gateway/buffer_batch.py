"""Batch wire bytes straight from buffered records, without parsing a single body.

Protobuf's wire format lets a message be built by concatenation: the header
(scalar fields 1-5) serialized from a small :class:`pb.Batch`, then for every
record its field's tag, the body's length as a varint, and the body. Parsing
the result gives the same Batch as appending the sub-messages through the
protobuf API. Records are written in field-number order (stable, so the
buffer's order holds within a field), which is the order protobuf's own
serializer uses: the bytes are the same as ``pb.Batch.SerializeToString()``
and a receiver can commit events first, telemetry last, as batch.proto asks.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import attrgetter
from typing import Final

from shelflink.device.batch import BATCH_VERSION
from shelflink.device.proto import batch_pb2 as pb
from shelflink.gateway.buffer_record import RECORD_FIELDS, Record

_LENGTH_DELIMITED: Final = 2
# Fields 6..11 are below 16, so each tag is a single byte.
_TAGS: Final = {f: bytes([f << 3 | _LENGTH_DELIMITED]) for f in RECORD_FIELDS}


def varint(value: int) -> bytes:
    """Protobuf's base-128 varint of a non-negative integer."""
    if value < 0:
        raise ValueError("varint of a negative number")
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def framed_size(body_len: int) -> int:
    """Bytes a body of ``body_len`` takes inside a Batch: tag, length, body."""
    return 1 + len(varint(body_len)) + body_len


def encode_batch_bytes(
    *,
    store_id: str,
    gateway_id: str,
    batch_seq: int,
    created_ms: int,
    records: Iterable[Record],
    version: int = BATCH_VERSION,
) -> bytes:
    """A serialized ``pb.Batch`` with this header and these records."""
    header = pb.Batch(
        version=version,
        store_id=store_id,
        gateway_id=gateway_id,
        batch_seq=batch_seq,
        created_ms=created_ms,
    ).SerializeToString()
    parts = [header]
    for record in sorted(records, key=attrgetter("field")):
        parts.append(_TAGS[record.field])
        parts.append(varint(len(record.body)))
        parts.append(record.body)
    return b"".join(parts)
