"""Honest evaluation of the stock-out model against a simple baseline.

Both score the same replayed rows (:mod:`shelflink.edge.replay`): the model its
probabilities, the baseline a linear extrapolation of the lane's recent
depletion rate (units left / units taken per hour → minutes to empty, the
fewer minutes the higher the risk). The model alarms at its card's
threshold, chosen on validation stores when it was trained; the baseline's
threshold is chosen here, on the evaluated rows, so that its precision is as
near the model's as it can be: the two are compared at equal precision, on
recall and on how early they warn.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from shelflink.edge.evaluation_metrics import (
    alarm_quality,
    average_precision,
    lead_times_min,
    roc_auc,
    threshold_for_precision,
)
from shelflink.edge.replay import ReplayedRows, ReplayOptions, replay_dataset
from shelflink.edge.stockout_model import StockoutModel, default_model_path
from shelflink.stream.lanes import FEATURE_NAMES

# The baseline's inputs among the lane features: the robust units estimate and
# the depletion rate over the recent window (units per hour).
BASELINE_UNITS = "units"
BASELINE_RATE = "depletion_per_h_3h"

# Rows per interpreter call: bounds the interpreter's arena on large data sets.
_CHUNK = 8192


def baseline_minutes_to_empty(
    units: npt.NDArray[np.floating], rate_per_h: npt.NDArray[np.floating]
) -> npt.NDArray[np.float64]:
    """Minutes until the lane is empty at its recent depletion rate; infinite
    when nothing was taken recently."""
    units = np.asarray(units, dtype=np.float64)
    rate = np.asarray(rate_per_h, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        minutes = np.where(rate > 0, np.maximum(units, 0.0) / rate * 60.0, np.inf)
    return np.asarray(minutes, dtype=np.float64)


def baseline_scores(features: npt.NDArray[np.float32], horizon_min: int) -> npt.NDArray[np.float64]:
    """The baseline's risk score in [0, 1]: ``horizon / (horizon + minutes to empty)``,
    decreasing in the extrapolated minutes (0 when the lane does not deplete)."""
    units = features[:, FEATURE_NAMES.index(BASELINE_UNITS)]
    rate = features[:, FEATURE_NAMES.index(BASELINE_RATE)]
    minutes = baseline_minutes_to_empty(units, rate)
    return np.asarray(horizon_min / (horizon_min + minutes), dtype=np.float64)


def model_scores(
    model: StockoutModel, features: npt.NDArray[np.float32]
) -> npt.NDArray[np.float64]:
    """The model's probabilities for every row, in batches."""
    out = np.zeros(features.shape[0], dtype=np.float64)
    for start in range(0, features.shape[0], _CHUNK):
        out[start : start + _CHUNK] = model.predict(features[start : start + _CHUNK])
    return out


def score_report(
    rows: ReplayedRows, scores: npt.NDArray[np.float64], threshold: float
) -> dict[str, Any]:
    """Ranking quality over the usable rows, alarm quality at ``threshold``, and
    warning lead time of every stock-out (median; a missed one counts 0)."""
    usable = rows.usable
    y = rows.label[usable]
    s = scores[usable]
    quality = alarm_quality(y, s, threshold)
    warns = (scores >= threshold) & (rows.true_units > 0)
    leads = lead_times_min(rows.lane, rows.ts_ms, warns, rows.stockout_lane, rows.stockout_ts_ms)
    return {
        "roc_auc": round(roc_auc(y, s), 6),
        "pr_auc": round(average_precision(y, s), 6),
        "threshold": round(float(threshold), 6),
        "precision": round(quality.precision, 6),
        "recall": round(quality.recall, 6),
        "lead_time_min": float(np.median(leads)) if leads.size else 0.0,
        "lead_time_mean_min": round(float(np.mean(leads)), 3) if leads.size else 0.0,
        "stockouts": int(leads.size),
        "stockouts_warned": int(np.sum(leads > 0)),
        "rows": int(usable.sum()),
        "positives": int(y.sum()),
    }


def compare(
    rows: ReplayedRows, scores: npt.NDArray[np.float64], threshold: float
) -> dict[str, Any]:
    """The model's ``scores`` at its ``threshold`` and the baseline on the same rows,
    the baseline at the model's precision."""
    model = score_report(rows, scores, threshold)
    base = baseline_scores(rows.features, rows.horizon_min)
    usable = rows.usable
    base_threshold = threshold_for_precision(rows.label[usable], base[usable], model["precision"])
    return {"model": model, "baseline": score_report(rows, base, base_threshold)}


def evaluate(
    dataset: Path,
    model_path: Path | None = None,
    *,
    options: ReplayOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Replay ``dataset`` (a ``write_dataset`` folder) and compare the model at
    ``model_path`` (default: the packaged one) with the baseline:
    ``{"model": {...}, "baseline": {...}}``, each with ``roc_auc``, ``pr_auc``,
    ``precision``, ``recall``, ``lead_time_min`` and their context."""
    model = StockoutModel.load(model_path or default_model_path())
    options = options or ReplayOptions(horizon_min=model.info.horizon_min)
    if options.horizon_min != model.info.horizon_min:
        raise ValueError(
            f"the model predicts {model.info.horizon_min} min ahead; "
            f"labels for {options.horizon_min} min would measure something else"
        )
    rows = replay_dataset(dataset, options, progress)
    if progress:
        progress(f"scoring {len(rows)} rows")
    return compare(rows, model_scores(model, rows.features), model.info.threshold)
