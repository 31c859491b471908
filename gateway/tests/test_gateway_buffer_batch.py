"""Batch bytes assembled from buffered records equal the Batch the protobuf API builds."""

from __future__ import annotations

from device_strategies import fridges, receipts, sales, shelves, statuses
from hypothesis import given, settings
from hypothesis import strategies as st

from shelflink.device import DeviceMessage
from shelflink.device.batch import BatchBuilder, BatchItem
from shelflink.device.proto import batch_pb2 as pb
from shelflink.gateway.buffer_batch import encode_batch_bytes, framed_size, varint
from shelflink.gateway.buffer_record import Priority, Record, record_of

events = st.builds(
    pb.Event,
    source=st.text(max_size=20),
    seq=st.integers(0, 2**63 - 1),
    ts=st.integers(-(2**63), 2**63 - 1),
    type=st.sampled_from(["gap", "buffer_dropped", "stockout_risk", ""]),
    severity=st.sampled_from(list(pb.Severity.values())),
    body_json=st.text(max_size=200),
)
items = st.lists(
    st.one_of(events, st.one_of(shelves, fridges, sales, receipts, statuses)), max_size=40
)


def as_item(message: pb.Event | DeviceMessage) -> BatchItem:
    """The protobuf sub-message the device SDK's BatchBuilder makes of a device message."""
    if isinstance(message, pb.Event):
        return message
    one = BatchBuilder(store_id="s", gateway_id="g")
    one.add(message)
    b = one.build(batch_seq=0, created_ms=0)
    made: list[BatchItem] = [*b.statuses, *b.sales, *b.receipts, *b.shelf, *b.fridge]
    (item,) = made
    return item


@settings(max_examples=200, deadline=None)
@given(
    messages=items,
    store_id=st.text(max_size=30),
    gateway_id=st.text(max_size=30),
    batch_seq=st.integers(0, 2**64 - 1),
    created_ms=st.integers(-(2**63), 2**63 - 1),
)
def test_assembled_bytes_parse_into_the_batch_the_api_builds(
    messages: list[pb.Event | DeviceMessage],
    store_id: str,
    gateway_id: str,
    batch_seq: int,
    created_ms: int,
) -> None:
    builder = BatchBuilder(store_id=store_id, gateway_id=gateway_id)
    records: list[Record] = []
    for message in messages:
        if isinstance(message, pb.Event):
            builder.add_event(message)
        else:
            builder.add(message)
        records.append(record_of(as_item(message)))
    expected = builder.build(batch_seq=batch_seq, created_ms=created_ms)

    wire = encode_batch_bytes(
        store_id=store_id,
        gateway_id=gateway_id,
        batch_seq=batch_seq,
        created_ms=created_ms,
        records=records,
    )

    assert pb.Batch.FromString(wire) == expected
    # Field-number order is protobuf's own: the very same bytes, so a resent
    # lease is byte-identical and a receiver sees events before telemetry.
    assert wire == expected.SerializeToString()


@given(st.integers(0, 2**64 - 1))
def test_varint_is_protobufs(value: int) -> None:
    # Field 4 (batch_seq) is a varint: its encoding is the tag byte 0x20, then the value.
    encoded = pb.Batch(batch_seq=value).SerializeToString()
    assert (b"\x20" + varint(value) if value else b"") == encoded


@given(st.binary(max_size=70_000))
def test_framed_size_is_what_a_record_takes_in_a_batch(body: bytes) -> None:
    record = Record(Priority.EVENT, 6, "gw", 1, 0, body)
    header = encode_batch_bytes(store_id="", gateway_id="", batch_seq=0, created_ms=0, records=[])
    wire = encode_batch_bytes(
        store_id="", gateway_id="", batch_seq=0, created_ms=0, records=[record]
    )
    assert len(wire) - len(header) == framed_size(len(body))
