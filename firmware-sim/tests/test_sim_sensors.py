"""Load cells as they really read, and faults that change readings but never the truth."""

from __future__ import annotations

import dataclasses

import numpy as np

from shelflink.sim import (
    DEFAULT_START,
    PROFILES,
    Fault,
    FaultKind,
    FaultSchedule,
    SimClock,
    StoreSim,
    build_catalog,
    build_layout,
)
from shelflink.sim.sensors import Calibration, LoadCellParams, measure

CLOCK = SimClock.starting(DEFAULT_START)
DAY = CLOCK.ticks_per_day
HOUR_MS = 3_600_000


def store(faults: FaultSchedule | None = None, seed: int = 21) -> StoreSim:
    layout = build_layout(seed, 0, PROFILES["convenience"], build_catalog(seed))
    return StoreSim(layout, seed=seed, clock=CLOCK, faults=faults)


def at(hour: float) -> int:
    return CLOCK.start_ms + int(hour * HOUR_MS)


def test_a_stuck_lane_repeats_its_last_value_while_the_truth_moves_on() -> None:
    plain = store()
    shelf = plain.layout.shelves[0]
    fault = Fault(shelf.device_id, FaultKind.STUCK, at(5), at(16), lane=2)
    faulty = store(FaultSchedule((fault,)))
    a, b = plain.advance(DAY), faulty.advance(DAY)
    lane = shelf.start + 2
    window = (a.ts >= fault.start_ms) & (a.ts < fault.end_ms)
    first = int(np.argmax(window))
    stuck = b.grams[window, lane]
    stuck = stuck[~np.isnan(stuck)]  # random dropouts still happen in transit
    assert (stuck == b.grams[first - 1, lane]).all()
    assert len(set(a.units[window, lane].tolist())) > 1, "the lane really changed meanwhile"
    # Other lanes, and the lane after the fault, read as without the fault.
    others = np.ones(a.grams.shape[1], dtype=bool)
    others[lane] = False
    assert np.array_equal(a.grams[:, others], b.grams[:, others], equal_nan=True)
    assert np.array_equal(a.grams[~window], b.grams[~window], equal_nan=True)
    # The truth, the customers and the tills do not know about faults.
    assert np.array_equal(a.units, b.units)
    assert np.array_equal(a.sales.serial, b.sales.serial)


def test_a_stuck_value_carries_across_steps() -> None:
    shelf = store().layout.shelves[1]
    fault = Fault(shelf.device_id, FaultKind.STUCK, at(2), at(20))  # every lane
    sim = store(FaultSchedule((fault,)))
    before = sim.advance(120)  # to 02:00, the last tick before the fault
    frozen = before.grams[-1, shelf.start : shelf.stop]
    for _ in range(10):
        step = sim.advance(37)
        rows = step.grams[:, shelf.start : shelf.stop]
        assert ((rows == frozen) | np.isnan(rows)).all()


def test_dropouts_read_null_and_offline_devices_send_nothing() -> None:
    layout = store().layout
    shelf, other = layout.shelves[0], layout.shelves[1]
    faults = FaultSchedule(
        (
            Fault(shelf.device_id, FaultKind.DROPOUT, at(1), at(3), lane=0),
            Fault(other.device_id, FaultKind.OFFLINE, at(4), at(5)),
            Fault(layout.fridges[0].device_id, FaultKind.OFFLINE, at(4), at(5)),
        )
    )
    step = store(faults).advance(DAY)
    dropped = (step.ts >= at(1)) & (step.ts < at(3))
    assert np.isnan(step.grams[dropped, shelf.start]).all()
    assert not np.isnan(step.grams[dropped, shelf.start + 1]).all()
    offline = (step.ts >= at(4)) & (step.ts < at(5))
    assert not step.shelf_online[offline, 1].any() and step.shelf_online[~offline, 1].all()
    assert step.shelf_online[:, 0].all()
    assert not step.fridge_online[offline, 0].any() and step.fridge_online[:, 1].all()
    # Random dropouts are rare but real.
    rate = np.isnan(step.grams).mean()
    assert 0 < rate < 0.01


def test_readings_drift_with_board_temperature_through_the_day() -> None:
    sim = store()
    step = sim.advance(DAY)
    shelf = sim.layout.shelves[0]
    board = step.board_c[:, 0]
    hours = (step.ts % 86_400_000) / HOUR_MS
    assert board[(hours > 14) & (hours < 16)].mean() > board[(hours > 2) & (hours < 4)].mean() + 2
    cal = sim.devices.calibration[0]
    lane = int(np.argmax(np.abs(cal.drift_g_per_c)))
    # Closed at night: nobody touches the lane, so the reading moves with temperature.
    night = (hours < 6.0) & ~np.isnan(step.grams[:, shelf.start + lane])
    assert len(set(step.units[night, shelf.start + lane].tolist())) == 1
    slope = np.polyfit(board[night], step.grams[night, shelf.start + lane], 1)[0]
    assert abs(slope - cal.drift_g_per_c[lane]) < 0.5


def test_an_empty_lane_reads_its_tare_offset_not_zero() -> None:
    params = LoadCellParams()
    cal = Calibration(np.array([12.0, -7.0]), np.array([0.0, 0.0]), 0.0)
    units = np.array([[0, 0], [3, 0]], dtype=np.int64)
    none = np.zeros((2, 2), dtype=bool)
    grams, last = measure(
        units,
        np.array([100.0, 50.0]),
        np.full(2, params.reference_c),
        cal,
        np.zeros((2, 2)),
        none,
        none,
        np.full(2, np.nan),
        params,
    )
    assert grams.tolist() == [[12.0, -7.0], [312.0, -7.0]]
    assert last.tolist() == [312.0, -7.0]


def test_faults_are_validated_against_the_device() -> None:
    layout = store().layout
    for fault in (
        Fault(layout.shelves[0].device_id, FaultKind.COMPRESSOR_FAILURE, 0, 1),
        Fault(layout.fridges[0].device_id, FaultKind.STUCK, 0, 1),
        Fault(layout.shelves[0].device_id, FaultKind.DROPOUT, 0, 1, lane=99),
    ):
        try:
            FaultSchedule((fault,)).validate(layout)
        except ValueError:
            continue
        raise AssertionError(f"{fault} should be refused")
    assert dataclasses.replace(Fault("x", FaultKind.OFFLINE, 0, 1)).kind is FaultKind.OFFLINE
