"""What the durable buffer holds and hands out: records, leases and drop reports.

A record is one serialized protobuf sub-message of :class:`pb.Batch` (a
``pb.ShelfReading``, ``pb.Sale``, ...) together with the Batch field number it
belongs to. The buffer never parses bodies: the uplink concatenates them into a
Batch as they are (see :mod:`shelflink.gateway.buffer_batch`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from shelflink.device.batch import BatchItem
from shelflink.device.proto import batch_pb2 as pb

# Batch field numbers of the repeated record fields (batch.proto, contract v1).
FIELD_EVENTS: Final = 6
FIELD_STATUSES: Final = 7
FIELD_SALES: Final = 8
FIELD_RECEIPTS: Final = 9
FIELD_SHELF: Final = 10
FIELD_FRIDGE: Final = 11
RECORD_FIELDS: Final = frozenset(range(FIELD_EVENTS, FIELD_FRIDGE + 1))

# SQLite stores signed 64-bit integers; the contract's seq is capped to fit.
SEQ_MAX: Final = 2**63 - 1


class Priority(IntEnum):
    """Lower is sent first and kept longest."""

    EVENT = 0  # gateway events and alarms: never dropped
    STATUS = 1  # device births and deaths: never dropped
    SCAN = 2  # sales and goods receipts, business data: never dropped
    TELEMETRY = 3  # raw readings: the only class dropped when the buffer is full


# The priority a record gets unless the gateway decides otherwise (it may, for
# instance, keep fridge readings of a cold-chain excursion as STATUS).
PRIORITY_BY_FIELD: Final[dict[int, Priority]] = {
    FIELD_EVENTS: Priority.EVENT,
    FIELD_STATUSES: Priority.STATUS,
    FIELD_SALES: Priority.SCAN,
    FIELD_RECEIPTS: Priority.SCAN,
    FIELD_SHELF: Priority.TELEMETRY,
    FIELD_FRIDGE: Priority.TELEMETRY,
}


@dataclass(frozen=True, slots=True)
class Record:
    """One buffered fact; ``(device, seq, field)`` identifies it (re-appending is a no-op)."""

    priority: Priority
    field: int
    device: str
    seq: int
    ts: int  # epoch ms
    body: bytes  # the serialized sub-message of Batch field ``field``

    def __post_init__(self) -> None:
        # Checked here, once, so that a bad record fails in the caller's frame
        # instead of failing a whole group commit in the SQLite thread.
        if self.field not in RECORD_FIELDS:
            raise ValueError(f"field {self.field} is not a Batch record field (6..11)")
        if not 0 <= self.seq <= SEQ_MAX:
            raise ValueError(f"seq {self.seq} is outside 0..2**63-1")
        if not isinstance(self.priority, Priority):
            object.__setattr__(self, "priority", Priority(self.priority))


def record_of(item: BatchItem, priority: Priority | None = None) -> Record:
    """The record for one Batch sub-message, with its field's default priority."""
    match item:
        case pb.Event():
            field, device = FIELD_EVENTS, item.source
        case pb.DeviceStatus():
            field, device = FIELD_STATUSES, item.device
        case pb.Sale():
            field, device = FIELD_SALES, item.device
        case pb.GoodsReceipt():
            field, device = FIELD_RECEIPTS, item.device
        case pb.ShelfReading():
            field, device = FIELD_SHELF, item.device
        case pb.FridgeReading():
            field, device = FIELD_FRIDGE, item.device
    return Record(
        priority=PRIORITY_BY_FIELD[field] if priority is None else priority,
        field=field,
        device=device,
        seq=item.seq,
        ts=item.ts,
        body=item.SerializeToString(),
    )


@dataclass(frozen=True, slots=True)
class Lease:
    """Records handed to the uplink under one batch number, until acked or released.

    After a restart :meth:`DurableBuffer.leased` returns the same lease: same
    ``batch_seq``, ``created_ms`` and records in the same order, so a resent
    batch is byte-identical and the cloud de-duplicates it by batch.
    """

    batch_seq: int
    created_ms: int  # when it was leased; the uplink uses it as Batch.created_ms
    records: tuple[Record, ...]
    first_id: int  # lowest buffer row id in the lease
    last_id: int  # highest; with priorities a lease need not be a contiguous id range


@dataclass(frozen=True, slots=True)
class DropReport:
    """Telemetry one device lost to the full-buffer policy, for a ``buffer_dropped`` event."""

    device: str
    records: int
    seq_ranges: tuple[tuple[int, int], ...]  # inclusive (first, last), ascending, disjoint
