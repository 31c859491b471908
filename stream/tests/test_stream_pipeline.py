"""The streamz shelf pipeline end to end: device messages in, features and ticks out."""

from __future__ import annotations

from typing import Any

from streamz import Stream  # type: ignore[import-untyped]

from shelflink.device.models import Sale, ShelfReading
from shelflink.stream.lanes import FEATURE_NAMES, LaneFeatureState
from shelflink.stream.operators import shelf_pipeline
from shelflink.stream.watermark import InOrderGate

MONDAY_MS = 1_704_067_200_000
MINUTE_MS = 60_000


def test_messages_emitted_into_the_pipeline_update_state_and_tick(make_shelf: Any) -> None:
    shelf = make_shelf(2)
    state = LaneFeatureState(shelf.specs())
    seen: list[tuple[int, list[int]]] = []
    gate: InOrderGate[str] = InOrderGate()

    def on_tick(boundary_ms: int) -> None:
        seen.append((boundary_ms, state.units().tolist()))

    source = shelf_pipeline(state, tick_ms=5 * MINUTE_MS, on_tick=on_tick, gate=gate)
    seq = 0
    for k in range(16):
        # Readings land 20 s into each minute; lane 0 loses one unit at minute 7.
        ts = MONDAY_MS + k * MINUTE_MS + 20_000
        reading = ShelfReading(
            device=shelf.device,
            seq=seq,
            ts=ts,
            grams=shelf.grams([30 if k < 7 else 29, 12]),
            board_c=25.0,
        )
        source.emit(reading)
        if k == 9:
            source.emit(reading)  # a broker redelivery
        seq += 1
    source.emit(
        Sale(
            device="s0001-till-01",
            seq=0,
            ts=MONDAY_MS + 9 * MINUTE_MS,
            gtin=shelf.gtins[0],
            serial="00010000000001",
            qty=1,
            unit_price_minor=199,
            currency="EUR",
            receipt_id="s0001-r00000001",
        )
    )
    stale = ShelfReading(
        device=shelf.device, seq=seq, ts=MONDAY_MS, grams=shelf.grams([0, 0]), board_c=25.0
    )
    source.emit(stale)  # older than what the gate has seen: dropped

    assert [b for b, _ in seen] == [
        MONDAY_MS,
        MONDAY_MS + 5 * MINUTE_MS,
        MONDAY_MS + 10 * MINUTE_MS,
        MONDAY_MS + 15 * MINUTE_MS,
    ]
    assert seen[1][1] == [30, 12]
    assert seen[2][1] == [29, 12]
    assert (gate.counts.accepted, gate.counts.duplicate, gate.counts.late) == (17, 1, 1)
    now = MONDAY_MS + 15 * MINUTE_MS
    features = state.features(now)
    assert features[0, FEATURE_NAMES.index("depletion_per_h_1h")] == 1.0
    assert features[0, FEATURE_NAMES.index("sales_per_h_24h")] == 1.0 / 24.0
    assert state.units().tolist() == [29, 12]


def test_operators_are_registered_on_every_stream() -> None:
    for name in ("in_order", "shelf_features", "event_watermark", "ticks"):
        assert callable(getattr(Stream(), name))
