"""Between device messages and the protobuf :class:`Batch` a gateway sends to the cloud.

The JSON models are the device-facing contract; the batch is the compact
gateway-to-cloud form of the same facts. Load-cell grams travel as float32,
which keeps 0.01 g resolution up to the contract's 100 kg limit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from shelflink.device.models import (
    DataMessage,
    DeviceKind,
    DeviceMessage,
    FridgeReading,
    GoodsReceipt,
    Reply,
    Sale,
    ShelfReading,
    Status,
)
from shelflink.device.proto import batch_pb2 as pb

BATCH_VERSION = 1


def _shelf(message: ShelfReading) -> pb.ShelfReading:
    mask = 0
    for lane, grams in enumerate(message.grams):
        if grams is None:
            mask |= 1 << lane
    return pb.ShelfReading(
        device=message.device,
        seq=message.seq,
        ts=message.ts,
        grams=[0.0 if g is None else g for g in message.grams],
        missing_mask=mask,
        board_c=message.board_c,
    )


def _fridge(message: FridgeReading) -> pb.FridgeReading:
    return pb.FridgeReading(
        device=message.device,
        seq=message.seq,
        ts=message.ts,
        cabinet_c=message.cabinet_c,
        evaporator_c=message.evaporator_c,
        door_open=message.door_open,
        compressor_on=message.compressor_on,
        defrost_on=message.defrost_on,
    )


def _status(message: Status) -> pb.DeviceStatus:
    return pb.DeviceStatus(
        device=message.device,
        seq=message.seq,
        ts=message.ts,
        online=message.online,
        cause=message.cause,
        kind=message.kind.value,
        firmware=message.firmware,
        boot_id=message.boot_id,
        interval_ms=message.interval_ms,
        lanes=message.lanes or 0,
    )


BatchItem = (
    pb.Event | pb.DeviceStatus | pb.Sale | pb.GoodsReceipt | pb.ShelfReading | pb.FridgeReading
)


def to_batch_item(message: DeviceMessage) -> BatchItem | None:
    """The protobuf form of a device message; ``None`` for what never leaves the store."""
    match message:
        case ShelfReading():
            return _shelf(message)
        case FridgeReading():
            return _fridge(message)
        case Sale():
            return pb.Sale(
                device=message.device,
                seq=message.seq,
                ts=message.ts,
                gtin=message.gtin,
                serial=message.serial or "",
                qty=message.qty,
                unit_price_minor=message.unit_price_minor,
                currency=message.currency,
                receipt_id=message.receipt_id,
            )
        case GoodsReceipt():
            return pb.GoodsReceipt(
                device=message.device,
                seq=message.seq,
                ts=message.ts,
                gtin=message.gtin,
                serial=message.serial or "",
                qty=message.qty,
                delivery_ref=message.delivery_ref,
            )
        case Status():
            return _status(message)
        case Reply():
            # Command replies are a conversation with the gateway; they stay in the store.
            return None


@dataclass(slots=True)
class BatchBuilder:
    """Collects one store's messages; :meth:`build` returns the protobuf batch."""

    store_id: str
    gateway_id: str
    _batch: pb.Batch = field(default_factory=pb.Batch)

    def add(self, message: DeviceMessage) -> None:
        batch = self._batch
        match to_batch_item(message):
            case pb.ShelfReading() as item:
                batch.shelf.append(item)
            case pb.FridgeReading() as item:
                batch.fridge.append(item)
            case pb.Sale() as item:
                batch.sales.append(item)
            case pb.GoodsReceipt() as item:
                batch.receipts.append(item)
            case pb.DeviceStatus() as item:
                batch.statuses.append(item)
            case _:
                pass

    def add_event(self, event: pb.Event) -> None:
        self._batch.events.append(event)

    def __len__(self) -> int:
        b = self._batch
        return (
            len(b.events)
            + len(b.statuses)
            + len(b.sales)
            + len(b.receipts)
            + len(b.shelf)
            + len(b.fridge)
        )

    def build(self, batch_seq: int, created_ms: int) -> pb.Batch:
        batch = pb.Batch()
        batch.CopyFrom(self._batch)
        batch.version = BATCH_VERSION
        batch.store_id = self.store_id
        batch.gateway_id = self.gateway_id
        batch.batch_seq = batch_seq
        batch.created_ms = created_ms
        return batch


def iter_messages(batch: pb.Batch) -> Iterator[DataMessage | Status]:
    """The device messages in a batch, as models (events are not device messages).

    Uses ``model_construct``: the gateway validated every message before it was
    batched, and the cloud's trust boundary is the batch's gateway credentials.
    """
    for st in batch.statuses:
        yield Status.model_construct(
            device=st.device,
            seq=st.seq,
            ts=st.ts,
            online=st.online,
            cause=st.cause,
            kind=DeviceKind(st.kind),
            firmware=st.firmware,
            boot_id=st.boot_id,
            interval_ms=st.interval_ms,
            lanes=st.lanes or None,
        )
    for s in batch.sales:
        yield Sale.model_construct(
            device=s.device,
            seq=s.seq,
            ts=s.ts,
            gtin=s.gtin,
            serial=s.serial or None,
            qty=s.qty,
            unit_price_minor=s.unit_price_minor,
            currency=s.currency,
            receipt_id=s.receipt_id,
        )
    for r in batch.receipts:
        yield GoodsReceipt.model_construct(
            device=r.device,
            seq=r.seq,
            ts=r.ts,
            gtin=r.gtin,
            serial=r.serial or None,
            qty=r.qty,
            delivery_ref=r.delivery_ref,
        )
    for sh in batch.shelf:
        yield ShelfReading.model_construct(
            device=sh.device,
            seq=sh.seq,
            ts=sh.ts,
            grams=[
                None if sh.missing_mask >> lane & 1 else grams
                for lane, grams in enumerate(sh.grams)
            ],
            board_c=sh.board_c,
        )
    for f in batch.fridge:
        yield FridgeReading.model_construct(
            device=f.device,
            seq=f.seq,
            ts=f.ts,
            cabinet_c=f.cabinet_c,
            evaporator_c=f.evaporator_c,
            door_open=f.door_open,
            compressor_on=f.compressor_on,
            defrost_on=f.defrost_on,
        )
