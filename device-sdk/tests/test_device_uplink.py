"""The uplink contract: topics, and payload framing that refuses what it cannot trust."""

from __future__ import annotations

import contextlib
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shelflink.device.proto import batch_pb2 as pb
from shelflink.device.uplink import (
    Encoding,
    UplinkError,
    ack_topic,
    batch_subscription,
    batch_topic,
    frame_batch,
    gateway_of_batch_topic,
    unframe_batch,
)


def batch(n: int = 3) -> pb.Batch:
    b = pb.Batch(version=1, store_id="s1", gateway_id="gw-s1", batch_seq=9, created_ms=5)
    for i in range(n):
        b.shelf.add(device="d", seq=i, ts=i, grams=[1.0, 2.0], board_c=20.0)
    return b


@pytest.mark.parametrize("encoding", list(Encoding))
def test_framing_round_trips(encoding: Encoding) -> None:
    body = batch().SerializeToString()
    assert unframe_batch(frame_batch(body, encoding)) == batch()


def test_zlib_makes_telemetry_smaller() -> None:
    body = batch(500).SerializeToString()
    assert len(frame_batch(body, Encoding.ZLIB)) * 3 < len(body)


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        (b"", "empty"),
        (b"\x07abc", "unknown payload encoding 7"),
        (b"\x01not zlib", "not zlib"),
        (b"\x00\xff\xff\xff", "not a protobuf Batch"),
        (bytes([0]) + pb.Batch(version=2).SerializeToString(), "version 2"),
    ],
)
def test_bad_payloads_say_why(payload: bytes, words: str) -> None:
    with pytest.raises(UplinkError, match=words):
        unframe_batch(payload)


def test_a_zip_bomb_is_refused_without_inflating_it() -> None:
    bomb = bytes([Encoding.ZLIB]) + zlib.compress(b"\0" * (64 << 20))
    assert len(bomb) < 100_000
    with pytest.raises(UplinkError, match="inflates beyond"):
        unframe_batch(bomb, max_bytes=1 << 20)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_escape_as_another_error(payload: bytes) -> None:
    with contextlib.suppress(UplinkError):
        unframe_batch(payload)


def test_topics() -> None:
    assert batch_topic("gw-1") == "shelflink/v1/uplink/gw-1/batch"
    assert ack_topic("gw-1") == "shelflink/v1/uplink/gw-1/ack"
    assert gateway_of_batch_topic("shelflink/v1/uplink/gw-1/batch") == "gw-1"
    assert batch_subscription(shared=True) == "$share/ingest/shelflink/v1/uplink/+/batch"
    assert batch_subscription(shared=False) == "shelflink/v1/uplink/+/batch"
    for bad in ("shelflink/v1/uplink/gw-1/ack", "shelflink/v1/uplink/g w/batch", "x/y"):
        with pytest.raises(UplinkError):
            gateway_of_batch_topic(bad)
    with pytest.raises(UplinkError):
        batch_topic("gw/1")
