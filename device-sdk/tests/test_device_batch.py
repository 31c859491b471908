"""The gateway-to-cloud protobuf batch: committed code is fresh, and messages survive it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from device_strategies import fridges, receipts, sales, shelves, statuses
from hypothesis import given, settings
from hypothesis import strategies as st

from shelflink.device import DeviceMessage, ShelfReading, encode
from shelflink.device.batch import BatchBuilder, iter_messages
from shelflink.device.proto import batch_pb2 as pb

MEMBER = Path(__file__).resolve().parents[1]
GENERATED = ["batch_pb2.py", "batch_pb2.pyi"]


def test_committed_protobuf_code_is_not_stale(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(MEMBER / "tools" / "generate_proto.py"), "--out", str(tmp_path)],
        check=True,
        timeout=60,
    )
    for name in GENERATED:
        fresh = (tmp_path / "shelflink/device/proto" / name).read_bytes()
        committed = (MEMBER / "src/shelflink/device/proto" / name).read_bytes()
        assert fresh == committed, f"{name} is stale: run `make proto` and commit the result"


def _float32(value: float) -> float:
    return float(pb.FridgeReading(cabinet_c=value).cabinet_c)


def _as_float32(message: DeviceMessage) -> DeviceMessage:
    if isinstance(message, ShelfReading):
        return message.model_copy(
            update={
                "grams": [None if g is None else _float32(g) for g in message.grams],
                "board_c": _float32(message.board_c),
            }
        )
    fields = {
        name: _float32(value)
        for name, value in message.model_dump().items()
        if isinstance(value, float)
    }
    return message.model_copy(update=fields)


@settings(max_examples=50)
@given(st.lists(st.one_of(shelves, fridges, sales, receipts, statuses), max_size=30))
def test_batch_round_trip_keeps_every_message(messages: list[DeviceMessage]) -> None:
    builder = BatchBuilder(store_id="s1", gateway_id="gw-s1")
    for message in messages:
        builder.add(message)
    assert len(builder) == len(messages)
    wire = builder.build(batch_seq=7, created_ms=1).SerializeToString()
    batch = pb.Batch.FromString(wire)
    assert (batch.version, batch.store_id, batch.gateway_id, batch.batch_seq) == (
        1,
        "s1",
        "gw-s1",
        7,
    )
    decoded = list(iter_messages(batch))
    key = lambda m: (m.type, m.device, m.seq)  # noqa: E731
    assert sorted(decoded, key=key) == sorted((_as_float32(m) for m in messages), key=key)


def test_missing_lanes_survive_the_batch() -> None:
    reading = ShelfReading(device="d1", seq=1, ts=5, grams=[None, 12.5, None], board_c=21.0)
    builder = BatchBuilder(store_id="s1", gateway_id="gw")
    builder.add(reading)
    (back,) = iter_messages(builder.build(1, 1))
    assert back == reading


def test_batch_is_compact() -> None:
    # 64 lanes with realistic, varied loads: the batch form is at most half the JSON.
    reading = ShelfReading(
        device="s0001-shelf-01",
        seq=123456,
        ts=1_764_150_000_000,
        grams=[1234.5 + lane * 7.31 for lane in range(64)],
        board_c=21.5,
    )
    builder = BatchBuilder(store_id="s0001", gateway_id="gw")
    builder.add(reading)
    assert len(builder.build(1, 1).SerializeToString()) * 2 < len(encode(reading))
