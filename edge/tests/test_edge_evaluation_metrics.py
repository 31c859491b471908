"""The evaluation metrics against cases worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shelflink.edge.evaluation_metrics import (
    alarm_quality,
    average_precision,
    lead_times_min,
    roc_auc,
    threshold_for_max_f1,
    threshold_for_precision,
)

Y = np.array([False, False, True, True])
S = np.array([0.1, 0.4, 0.35, 0.8])


def test_roc_auc_of_the_textbook_case() -> None:
    # Positive/negative pairs: (0.35 > 0.1), (0.35 < 0.4), (0.8 > 0.1), (0.8 > 0.4): 3 of 4.
    assert roc_auc(Y, S) == pytest.approx(0.75)


def test_roc_auc_counts_ties_as_one_half() -> None:
    y = np.array([True, False, True, False])
    s = np.array([0.5, 0.5, 0.9, 0.1])
    # Pairs: (0.5 vs 0.5) = 1/2, (0.5 > 0.1) = 1, (0.9 > 0.5) = 1, (0.9 > 0.1) = 1 → 3.5 / 4.
    assert roc_auc(y, s) == pytest.approx(0.875)


def test_roc_auc_of_perfect_and_inverted_rankings() -> None:
    assert roc_auc(Y, np.array([0.0, 0.1, 0.2, 0.3])) == 1.0
    assert roc_auc(Y, np.array([0.3, 0.2, 0.1, 0.0])) == 0.0


def test_average_precision_of_the_textbook_case() -> None:
    # Descending: 0.8 (P, prec 1, rec 1/2), 0.4 (N), 0.35 (P, prec 2/3, rec 1).
    # AP = 1/2 * 1 + 1/2 * 2/3 = 5/6.
    assert average_precision(Y, S) == pytest.approx(5 / 6)


def test_average_precision_takes_a_tie_as_one_threshold() -> None:
    y = np.array([True, False, True, False])
    s = np.array([0.5, 0.5, 0.9, 0.1])
    # Thresholds 0.9 (tp 1, fp 0: prec 1, rec 1/2), 0.5 (tp 2, fp 1: prec 2/3, rec 1).
    assert average_precision(y, s) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # The order of tied rows in the input does not matter.
    assert average_precision(y[[1, 0, 2, 3]], s[[1, 0, 2, 3]]) == average_precision(y, s)


def test_a_constant_score_is_worth_the_positive_rate() -> None:
    y = np.array([True, False, False, False, True])
    s = np.zeros(5)
    assert average_precision(y, s) == pytest.approx(0.4)
    assert roc_auc(y, s) == pytest.approx(0.5)


def test_metrics_refuse_what_they_cannot_measure() -> None:
    with pytest.raises(ValueError):
        roc_auc(np.array([True, True]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError):
        average_precision(np.array([False, False]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError):
        roc_auc(Y, S[:3])
    with pytest.raises(ValueError):
        roc_auc(Y, np.array([0.1, np.nan, 0.2, 0.3]))


def test_alarm_quality_at_a_threshold() -> None:
    quality = alarm_quality(Y, S, 0.35)
    # Alarms at 0.4, 0.35, 0.8: two of three are positives; both positives alarmed.
    assert quality.precision == pytest.approx(2 / 3)
    assert quality.recall == 1.0
    assert quality.alarms == 3
    silent = alarm_quality(Y, S, 0.9)
    assert (silent.precision, silent.recall, silent.alarms) == (0.0, 0.0, 0)


def test_thresholds_for_f1_and_for_a_precision() -> None:
    # F1 at 0.8: 2*1/(1+0+2) = 2/3; at 0.4: 2*1/(1+1+2) = 1/2; at 0.35: 2*2/(2+1+2) = 4/5.
    assert threshold_for_max_f1(Y, S) == 0.35
    assert threshold_for_precision(Y, S, 1.0) == 0.8
    # Precision 0.5 at 0.4 and 0.5 at 0.1: equally near 0.55, the lower one alarms more.
    assert threshold_for_precision(Y, S, 0.55) == 0.1
    assert threshold_for_precision(Y, S, 0.7) == 0.35


MIN = 60_000


def test_lead_time_is_the_warning_run_that_reaches_the_stockout() -> None:
    # Lane 0 rows every 5 minutes from t=0; warnings from 10 to 25 min, stock-out at 30.
    ts = np.arange(0, 30, 5) * MIN
    lane = np.zeros(ts.size, dtype=int)
    warns = np.array([True, False, True, True, True, True])
    # Lane 1: silent just before its stock-out, so a missed stock-out (0).
    ts1 = np.arange(0, 20, 5) * MIN
    warns1 = np.array([True, True, True, False])
    leads = lead_times_min(
        np.r_[lane, np.ones(ts1.size, dtype=int)],
        np.r_[ts, ts1],
        np.r_[warns, warns1],
        np.array([0, 1]),
        np.array([30 * MIN, 20 * MIN]),
    )
    assert leads.tolist() == [20.0, 0.0]


def test_lead_time_run_does_not_cross_lanes_and_needs_a_row_before() -> None:
    # Lane 0 warns throughout; lane 1 warns only at its last row; lane 2 has no rows.
    lane = np.array([0, 0, 1, 1])
    ts = np.array([0, 5, 0, 5]) * MIN
    warns = np.array([True, True, False, True])
    leads = lead_times_min(lane, ts, warns, np.array([1, 0, 2, 0]), np.array([7, 7, 7, 0]) * MIN)
    # A stock-out at t=0 on lane 0 has no row before it: 0.
    assert leads.tolist() == [2.0, 7.0, 0.0, 0.0]


@given(
    st.lists(st.tuples(st.booleans(), st.floats(0, 1, allow_nan=False)), min_size=2, max_size=40)
)
def test_metrics_stay_in_range_and_agree_with_a_pairwise_count(
    rows: list[tuple[bool, float]],
) -> None:
    y = np.array([r[0] for r in rows])
    s = np.array([r[1] for r in rows])
    if y.all() or not y.any():
        return
    pos, neg = s[y], s[~y]
    pairwise = (
        np.sum(pos[:, None] > neg[None, :]) + 0.5 * np.sum(pos[:, None] == neg[None, :])
    ) / (pos.size * neg.size)
    assert roc_auc(y, s) == pytest.approx(pairwise)
    # Average precision straight from its definition, one distinct threshold at a time.
    expected, previous_recall = 0.0, 0.0
    for threshold in sorted(set(s.tolist()), reverse=True):
        alarm = s >= threshold
        recall = np.sum(alarm & y) / y.sum()
        expected += (recall - previous_recall) * np.sum(alarm & y) / alarm.sum()
        previous_recall = recall
    assert average_precision(y, s) == pytest.approx(expected)
