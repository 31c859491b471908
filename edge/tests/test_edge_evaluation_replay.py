"""Replaying a small simulated data set: labels, rows, and a reproducible evaluation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shelflink.edge.evaluation import baseline_minutes_to_empty, baseline_scores, evaluate
from shelflink.edge.replay import ReplayedRows, ReplayOptions, replay_dataset
from shelflink.sim import write_dataset
from shelflink.stream.lanes import FEATURE_NAMES

OPTIONS = ReplayOptions(step_min=10, warmup_min=360)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # A kiosk and a convenience store for a day and a half: enough stock-outs
    # for every metric, small enough for seconds.
    out = tmp_path_factory.mktemp("dataset")
    write_dataset(2, 1.5, 5, out, profile_mix={"kiosk": 1, "convenience": 1}, fault_rate=0.5)
    return out


@pytest.fixture(scope="module")
def rows(dataset: Path) -> ReplayedRows:
    return replay_dataset(dataset, OPTIONS)


def test_rows_cover_every_lane_at_every_sampled_tick(dataset: Path, rows: ReplayedRows) -> None:
    lanes = pq.read_table(dataset / "lanes.parquet").num_rows
    assert len(rows.lane_ids) == lanes
    ticks = np.unique(rows.ts_ms)
    assert len(rows) == lanes * ticks.size
    assert rows.features.shape == (len(rows), len(FEATURE_NAMES))
    assert rows.features.dtype == np.float32
    assert np.isfinite(rows.features).all()
    start = int(ticks[0]) - OPTIONS.warmup_min * 60_000
    assert np.all((ticks - start) % (OPTIONS.step_min * 60_000) == 0)


def test_labels_follow_the_horizon_and_leave_out_empty_and_censored_rows(
    dataset: Path, rows: ReplayedRows
) -> None:
    minutes = rows.minutes_to_stockout
    known = ~np.isnan(minutes)
    assert np.array_equal(rows.label, known & (minutes <= 180))
    # An empty lane is the out-of-stock rule's business, not the model's.
    assert not rows.usable[rows.true_units == 0].any()
    end_ms = int(
        pq.read_table(dataset / "labels.parquet", columns=["ts"])
        .column("ts")
        .cast(pa.int64())
        .to_numpy()
        .max()
    )
    censored = ~known & (rows.ts_ms > end_ms - 180 * 60_000)
    assert censored.any()
    assert not rows.usable[censored].any()
    # Rows whose three hours lie inside the data set keep their negative label.
    assert rows.usable[~known & ~censored & (rows.true_units > 0)].all()
    assert rows.label[rows.usable].any()
    assert not rows.label[rows.usable].all()


def test_stockouts_are_the_data_sets_own(dataset: Path, rows: ReplayedRows) -> None:
    truth = pq.read_table(dataset / "stockouts.parquet").to_pylist()
    first_row_ms = int(rows.ts_ms.min())
    start_ms = first_row_ms - OPTIONS.warmup_min * 60_000
    expected = sorted(
        (
            rows.lane_ids.index((r["store"], r["device"], r["lane"])),
            int(r["start_ts"].timestamp() * 1000),
        )
        for r in truth
        if int(r["start_ts"].timestamp() * 1000) >= first_row_ms
        and int(r["start_ts"].timestamp() * 1000) > start_ms
    )
    got = sorted(zip(rows.stockout_lane.tolist(), rows.stockout_ts_ms.tolist(), strict=True))
    assert got == expected
    assert got


def test_the_baseline_extrapolates_the_recent_depletion_rate() -> None:
    minutes = baseline_minutes_to_empty(
        np.array([6.0, 6.0, 0.0, 3.0]), np.array([2.0, 0.0, 1.0, 6.0])
    )
    assert minutes.tolist() == [180.0, np.inf, 0.0, 30.0]
    features = np.zeros((3, len(FEATURE_NAMES)), dtype=np.float32)
    features[:, FEATURE_NAMES.index("units")] = [6, 6, 3]
    features[:, FEATURE_NAMES.index("depletion_per_h_3h")] = [2, 0, 6]
    scores = baseline_scores(features, 180)
    assert scores.tolist() == [0.5, 0.0, 180 / 210]


@pytest.mark.slow
def test_evaluation_is_reproducible_and_reports_both_sides(dataset: Path) -> None:
    first = evaluate(dataset, options=ReplayOptions(step_min=10, warmup_min=360))
    second = evaluate(dataset, options=ReplayOptions(step_min=10, warmup_min=360))
    assert first == second
    assert set(first) == {"model", "baseline"}
    for side in first.values():
        assert {"roc_auc", "pr_auc", "precision", "recall", "lead_time_min"} <= set(side)
        assert 0.0 <= side["pr_auc"] <= 1.0
        assert 0.0 <= side["roc_auc"] <= 1.0
        assert side["lead_time_min"] >= 0.0
        assert side["stockouts"] > 0
    # Both are judged on the same rows.
    assert first["model"]["rows"] == first["baseline"]["rows"]
    assert first["model"]["positives"] == first["baseline"]["positives"]


def test_a_horizon_other_than_the_models_is_refused(dataset: Path) -> None:
    with pytest.raises(ValueError, match="180 min ahead"):
        evaluate(dataset, options=ReplayOptions(horizon_min=60))
