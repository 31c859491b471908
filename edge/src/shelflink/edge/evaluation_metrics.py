"""Ranking and alarm metrics for the stock-out model, in numpy alone.

ROC-AUC and average precision follow the usual definitions (the ones
scikit-learn implements), with tied scores handled as one threshold, so that
a score that cannot separate two rows gets no credit for an arbitrary order.
The gateway does not need scikit-learn, and neither does evaluating it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.floating]


@dataclass(frozen=True)
class AlarmQuality:
    """Precision and recall of the alarm ``score >= threshold``."""

    threshold: float
    precision: float
    recall: float
    alarms: int


def _check(labels: BoolArray, scores: FloatArray) -> tuple[BoolArray, FloatArray]:
    y = np.asarray(labels, dtype=bool).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.shape != s.shape:
        raise ValueError(f"{y.size} labels but {s.size} scores")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    return y, s


def roc_auc(labels: BoolArray, scores: FloatArray) -> float:
    """Area under the ROC curve: the probability that a random positive scores
    above a random negative, ties counting one half (Mann-Whitney U)."""
    y, s = _check(labels, scores)
    positives = int(y.sum())
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        raise ValueError("ROC-AUC needs at least one positive and one negative")
    order = np.argsort(s, kind="mergesort")
    sorted_scores = s[order]
    # Average ranks over runs of equal scores: ties split their credit evenly.
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], s.size]
    mean_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(s.size, dtype=np.float64)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    u = ranks[y].sum() - positives * (positives + 1) / 2.0
    return float(u / (positives * negatives))


def _cumulative_counts(
    labels: BoolArray, scores: FloatArray
) -> tuple[FloatArray, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Distinct thresholds in decreasing order with the true and false positives
    of ``score >= threshold`` at each."""
    y, s = _check(labels, scores)
    order = np.argsort(-s, kind="mergesort")
    s_desc = s[order]
    y_desc = y[order]
    last_of_run = np.r_[s_desc[1:] != s_desc[:-1], True]
    tp = np.cumsum(y_desc, dtype=np.int64)[last_of_run]
    fp = np.cumsum(~y_desc, dtype=np.int64)[last_of_run]
    return s_desc[last_of_run], tp, fp


def average_precision(labels: BoolArray, scores: FloatArray) -> float:
    """Area under the precision-recall curve as average precision:
    ``sum over thresholds of (recall_n - recall_{n-1}) * precision_n``."""
    _, tp, fp = _cumulative_counts(labels, scores)
    positives = int(tp[-1]) if tp.size else 0
    if positives == 0:
        raise ValueError("average precision needs at least one positive")
    precision = tp / (tp + fp)
    recall = tp / positives
    gains = np.diff(np.r_[0.0, recall])
    return float(np.sum(gains * precision))


def alarm_quality(labels: BoolArray, scores: FloatArray, threshold: float) -> AlarmQuality:
    """Precision and recall of raising an alarm where ``score >= threshold``;
    precision is 0 when nothing alarms."""
    y, s = _check(labels, scores)
    alarm = s >= threshold
    hits = int(np.sum(alarm & y))
    alarms = int(alarm.sum())
    positives = int(y.sum())
    return AlarmQuality(
        threshold=float(threshold),
        precision=hits / alarms if alarms else 0.0,
        recall=hits / positives if positives else 0.0,
        alarms=alarms,
    )


def threshold_for_max_f1(labels: BoolArray, scores: FloatArray) -> float:
    """The score threshold whose alarm has the highest F1 (the highest such
    threshold when several tie)."""
    thresholds, tp, fp = _cumulative_counts(labels, scores)
    positives = int(tp[-1])
    if positives == 0:
        raise ValueError("F1 needs at least one positive")
    f1 = 2 * tp / (tp + fp + positives)
    return float(thresholds[int(np.argmax(f1))])


def threshold_for_precision(labels: BoolArray, scores: FloatArray, precision: float) -> float:
    """The score threshold whose alarm's precision is nearest to ``precision``;
    among equally near ones, the lowest threshold (the one that alarms most)."""
    thresholds, tp, fp = _cumulative_counts(labels, scores)
    distance = np.abs(tp / (tp + fp) - precision)
    nearest = np.flatnonzero(distance == distance.min())
    return float(thresholds[nearest[-1]])


def lead_times_min(
    row_lane: npt.NDArray[np.integer],
    row_ts_ms: npt.NDArray[np.integer],
    row_warns: BoolArray,
    stockout_lane: npt.NDArray[np.integer],
    stockout_ts_ms: npt.NDArray[np.integer],
) -> npt.NDArray[np.float64]:
    """Warning lead time of every stock-out, in minutes.

    Rows are the scored ticks of each lane (``row_warns`` is ``score >=
    threshold``, False where the row could not warn, e.g. the lane was already
    empty). A stock-out at ``T`` was warned if the lane's last row before ``T``
    warns; its lead time is ``T`` minus the start of that row's unbroken run of
    warning rows. An unwarned stock-out counts 0.
    """
    lane = np.asarray(row_lane, dtype=np.int64)
    ts = np.asarray(row_ts_ms, dtype=np.int64)
    warns = np.asarray(row_warns, dtype=bool)
    order = np.lexsort((ts, lane))
    lane, ts, warns = lane[order], ts[order], warns[order]
    # A run breaks at a non-warning row and where a new lane starts.
    index = np.arange(lane.size)
    breaks = ~warns | np.r_[True, lane[1:] != lane[:-1]]
    last_break = np.maximum.accumulate(np.where(breaks, index, 0))
    run_start = np.where(warns[last_break], last_break, last_break + 1)
    out_lane = np.asarray(stockout_lane, dtype=np.int64)
    out_ts = np.asarray(stockout_ts_ms, dtype=np.int64)
    leads = np.zeros(out_ts.size, dtype=np.float64)
    if lane.size == 0:
        return leads
    # Position of the last row before each stock-out, searching (lane, ts) pairs.
    keys = lane * (1 << 42) + ts
    before = np.searchsorted(keys, out_lane * (1 << 42) + out_ts, side="left") - 1
    valid = before >= 0
    valid[valid] &= lane[before[valid]] == out_lane[valid]
    valid[valid] &= warns[before[valid]]
    starts = run_start[before[valid]]
    leads[valid] = (out_ts[valid] - ts[starts]) / 60_000.0
    return leads
