"""Lane alerts: hysteresis on the risk, out_of_stock and low_stock from the units estimate."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from shelflink.edge.lane_alerts import AlertKind, LaneAlert, LaneAlertConfig, LaneAlerts
from shelflink.stream.lanes import LaneSpec

LANES = (
    LaneSpec("s1-shelf-01", 0, "4006381333931", 250.0, 10),
    LaneSpec("s1-shelf-01", 1, "4006381333931", 250.0, 10),
)
CONFIG = LaneAlertConfig(risk_off_ratio=0.5, confirm_ticks=2, clear_ticks=2, low_fraction=0.2)
NO_ETA = np.full(2, np.inf)
SEEING = np.zeros(2, dtype=np.bool_)


def _units(*u: int) -> npt.NDArray[np.int64]:
    return np.array(u, dtype=np.int64)


def _kinds(alerts: list[LaneAlert]) -> list[tuple[str, bool, int]]:
    return [(a.kind.value, a.raised, a.lane.lane) for a in alerts]


def test_risk_needs_confirmation_and_clears_only_below_the_lower_threshold() -> None:
    alerts = LaneAlerts(LANES, CONFIG)
    p = [0.9, 0.1]

    def step(t: int, p: list[float]) -> list[LaneAlert]:
        return alerts.update(t, _units(5, 5), np.array(p), NO_ETA, SEEING, 0.6)

    assert step(1, p) == []  # one tick above is not enough
    raised = step(2, p)
    assert _kinds(raised) == [("stockout_risk", True, 0)]
    assert raised[0].probability == 0.9
    # Hovering between risk_off (0.3) and risk_on (0.6): no flapping, no clear.
    for t, hover in enumerate([0.5, 0.61, 0.4, 0.59, 0.35], start=3):
        assert step(t, [hover, 0.1]) == []
    assert step(8, [0.2, 0.1]) == []  # one tick below risk_off
    assert _kinds(step(9, [0.2, 0.1])) == [("stockout_risk", False, 0)]
    assert alerts.active()[AlertKind.STOCKOUT_RISK] == 0


def test_flapping_probability_raises_one_alert_per_episode() -> None:
    alerts = LaneAlerts(LANES, CONFIG)
    raised = 0
    rng = np.random.default_rng(1)
    for t in range(200):
        p = np.array([0.6 + rng.uniform(-0.25, 0.25), 0.0])
        raised += sum(a.raised for a in alerts.update(t, _units(5, 5), p, NO_ETA, SEEING, 0.6))
    # Noise around the threshold never drops below risk_off (0.3) twice in a row.
    assert raised == 1


def test_out_of_stock_and_low_stock_follow_units_and_never_stand_together() -> None:
    alerts = LaneAlerts(LANES, CONFIG)
    # capacity 10, low_fraction 0.2: low at 2 units or fewer.
    assert alerts.update(1, _units(5, 3), None, NO_ETA, SEEING, 0.6) == []
    assert _kinds(alerts.update(2, _units(2, 3), None, NO_ETA, SEEING, 0.6)) == [
        ("low_stock", True, 0)
    ]
    assert _kinds(alerts.update(3, _units(0, 3), None, NO_ETA, SEEING, 0.6)) == [
        ("out_of_stock", True, 0),
        ("low_stock", False, 0),
    ]
    assert alerts.update(4, _units(0, 3), None, NO_ETA, SEEING, 0.6) == []
    # A restock clears it.
    assert _kinds(alerts.update(5, _units(10, 3), None, NO_ETA, SEEING, 0.6)) == [
        ("out_of_stock", False, 0)
    ]


def test_a_blind_lane_neither_raises_nor_clears() -> None:
    alerts = LaneAlerts(LANES, CONFIG)
    blind = np.array([True, False])
    assert _kinds(alerts.update(1, _units(0, 0), None, NO_ETA, blind, 0.6)) == [
        ("out_of_stock", True, 1)
    ]
    alerts.update(2, _units(4, 4), None, NO_ETA, SEEING, 0.6)
    alerts.update(3, _units(0, 4), None, NO_ETA, SEEING, 0.6)
    # Lane 0 is empty; its cell then goes stuck at a value that reads as stock.
    assert alerts.update(4, _units(7, 4), None, NO_ETA, blind, 0.6) == []
    assert alerts.active()[AlertKind.OUT_OF_STOCK] == 1


def test_an_empty_lane_clears_its_risk_and_reports_eta() -> None:
    alerts = LaneAlerts(LANES, CONFIG)
    eta = np.array([42.0, np.inf])
    p = np.array([0.95, 0.0])
    alerts.update(1, _units(1, 5), p, eta, SEEING, 0.6)
    (raised,) = alerts.update(2, _units(1, 5), p, eta, SEEING, 0.6)
    assert raised.minutes_to_empty == 42.0 and raised.units == 1
    kinds = _kinds(alerts.update(3, _units(0, 5), p, eta, SEEING, 0.6))
    assert ("out_of_stock", True, 0) in kinds and ("stockout_risk", False, 0) in kinds
