"""Replay of a simulated store: counts against the truth, restocks against the staff rounds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from shelflink.sim import write_dataset
from shelflink.stream.lane_replay import replay_lane_readings, time_replay
from shelflink.stream.lanes import LaneEvent, LaneEventKind, LaneFeatureState, LaneSpec

TICK_MS = 60_000
MONDAY_MS = 1_704_067_200_000


@pytest.mark.slow
def test_replay_counts_units_and_finds_the_restocks(tmp_path: Path) -> None:
    write_dataset(stores=1, days=2, seed=3, out=tmp_path)
    lanes = pq.read_table(tmp_path / "lanes.parquet").to_pylist()
    specs = [LaneSpec(r["device"], r["lane"], r["gtin"], r["unit_g"], r["capacity"]) for r in lanes]
    position = {(s.device, s.lane): i for i, s in enumerate(specs)}
    readings = pq.read_table(tmp_path / "readings.parquet")
    idx = np.array(
        [
            position[(d, int(n))]
            for d, n in zip(
                readings.column("device").to_pylist(),
                readings.column("lane").to_pylist(),
                strict=True,
            )
        ]
    )
    ts = readings.column("ts").cast("int64").to_numpy()
    grams = readings.column("grams").to_numpy(zero_copy_only=False).astype(np.float64)
    board_c = readings.column("board_c").to_numpy().astype(np.float64)
    truth = readings.column("true_units").to_numpy()

    state = LaneFeatureState(specs)
    estimate = np.empty(ts.shape[0], dtype=np.int64)
    events: list[LaneEvent] = []

    def after_tick(_: int, rows: slice) -> None:
        estimate[rows] = state.units()[idx[rows]]
        events.extend(state.drain_lane_events())

    ticks = replay_lane_readings(state, ts, idx, grams, board_c, on_tick=after_tick)
    assert ticks == 2 * 1440

    valid = np.isfinite(grams)
    assert (estimate[valid] == truth[valid]).mean() >= 0.99

    restocks = pq.read_table(tmp_path / "restocks.parquet").to_pylist()
    true = {(position[(r["device"], r["lane"])], int(r["ts"].timestamp() * 1000)) for r in restocks}
    found = {(e.index, e.ts_ms) for e in events if e.kind is LaneEventKind.RESTOCK}

    def near(key: tuple[int, int], pool: set[tuple[int, int]]) -> bool:
        return any((key[0], key[1] + k * TICK_MS) in pool for k in (-1, 0, 1))

    recall = sum(near(k, found) for k in true) / len(true)
    false_found = sum(not near(k, true) for k in found)
    assert recall >= 0.98
    assert false_found <= 0.02 * len(true)


def test_timed_replay_reports_what_it_replayed(make_shelf: Any) -> None:
    shelf = make_shelf(4)
    state = LaneFeatureState(shelf.specs())
    ticks = 30
    ts = np.repeat(MONDAY_MS + np.arange(ticks) * TICK_MS, 4)
    idx = np.tile(np.arange(4), ticks)
    grams = np.array([g for _ in range(ticks) for g in shelf.grams([10, 20, 30, 40])])
    figures = time_replay(state, ts, idx, grams, np.full(ts.shape[0], 25.0), features_every=10)
    assert (figures.ticks, figures.lane_readings, figures.feature_calls) == (30, 120, 3)
    assert state.units().tolist() == [10, 20, 30, 40]
    assert figures.lane_readings_per_s > 0
    with pytest.raises(ValueError, match="sorted"):
        replay_lane_readings(state, ts[::-1].copy(), idx, grams, np.full(ts.shape[0], 25.0))
