"""Hypothesis strategies for every v1 contract message, shared by the device tests."""

from __future__ import annotations

from hypothesis import strategies as st

from shelflink.device import (
    DeviceKind,
    DeviceMessage,
    FridgeReading,
    GoodsReceipt,
    Reply,
    Sale,
    ShelfReading,
    Status,
)
from shelflink.device.gtin import make_gtin

NOW = 1_764_150_000_000
STORE = "s0001"
ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}", fullmatch=True)
seqs = st.integers(min_value=0, max_value=2**63 - 1)
times = st.integers(min_value=NOW - 10 * 24 * 3600 * 1000, max_value=NOW + 60_000)
gtins = st.from_regex(r"[0-9]{12}", fullmatch=True).map(make_gtin)
serials = st.from_regex(r"[!-~]{1,30}", fullmatch=True)
refs = st.from_regex(r"[A-Za-z0-9_-]{1,30}", fullmatch=True)


def finite(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False)


shelves = st.builds(
    ShelfReading,
    device=ids,
    seq=seqs,
    ts=times,
    grams=st.lists(st.none() | finite(-1000, 100_000), min_size=1, max_size=64),
    board_c=finite(-40, 85),
)
fridges = st.builds(
    FridgeReading,
    device=ids,
    seq=seqs,
    ts=times,
    cabinet_c=finite(-40, 60),
    evaporator_c=finite(-60, 80),
    door_open=st.booleans(),
    compressor_on=st.booleans(),
    defrost_on=st.booleans(),
)
sales = st.builds(
    Sale,
    device=ids,
    seq=seqs,
    ts=times,
    gtin=gtins,
    serial=serials,
    qty=st.just(1),
    unit_price_minor=st.integers(0, 10**9),
    currency=st.sampled_from(["EUR", "USD", "TRY"]),
    receipt_id=refs,
)
receipts = st.builds(
    GoodsReceipt,
    device=ids,
    seq=seqs,
    ts=times,
    gtin=gtins,
    serial=st.none(),
    qty=st.integers(1, 10_000),
    delivery_ref=refs,
)
statuses = st.builds(
    Status,
    device=ids,
    seq=seqs,
    ts=times,
    online=st.booleans(),
    cause=st.sampled_from(["birth", "shutdown", "will"]),
    kind=st.just(DeviceKind.FRIDGE),
    firmware=st.from_regex(r"[!-~]{1,32}", fullmatch=True),
    boot_id=refs,
    interval_ms=st.integers(1000, 3_600_000),
)
replies = st.builds(
    Reply, device=ids, seq=seqs, ts=times, id=refs, ok=st.booleans(), error=st.none()
)
messages: st.SearchStrategy[DeviceMessage] = st.one_of(
    shelves, fridges, sales, receipts, statuses, replies
)
