"""The fridge's thermal model: thermostat, defrost, doors, and a failing compressor."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

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
from shelflink.sim.fridge import FridgeParams, FridgeState, FridgeTrace, defrost_schedule, simulate

PARAMS = FridgeParams()
TICK_S = 60.0
N = 24 * 60
TS = SimClock.starting(DEFAULT_START).ts_range(0, N)


def run(
    openings: int = 0,
    failed_from: int | None = None,
    ajar: bool = False,
    defrost: bool = True,
    room_c: float = 21.0,
) -> FridgeTrace:
    state = FridgeState(PARAMS.setpoint_c, PARAMS.setpoint_c)
    failed = np.zeros(N, dtype=bool)
    if failed_from is not None:
        failed[failed_from:] = True
    schedule = defrost_schedule(TS, PARAMS, 0) if defrost else np.zeros(N, dtype=bool)
    return simulate(
        state,
        PARAMS,
        TICK_S,
        np.full(N, room_c),
        np.full(N, openings, dtype=np.int64),
        schedule,
        failed,
        np.full(N, ajar),
    )


def test_the_thermostat_holds_the_cabinet_around_its_setpoint() -> None:
    trace = run(defrost=False)
    settled = trace.cabinet_c[60:]
    assert settled.min() > PARAMS.setpoint_c - PARAMS.hysteresis_c
    assert settled.max() < PARAMS.setpoint_c + PARAMS.hysteresis_c
    assert 0.1 < trace.compressor_on.mean() < 0.9
    # Hysteresis: the compressor starts only above the upper threshold.
    starts = np.flatnonzero(trace.compressor_on[1:] & ~trace.compressor_on[:-1]) + 1
    assert len(starts) > 5
    assert (trace.cabinet_c[starts - 1] > PARAMS.setpoint_c + PARAMS.hysteresis_c / 2).all()


def test_a_failed_compressor_lets_the_cabinet_warm_towards_the_room() -> None:
    trace = run(failed_from=600)
    assert not trace.compressor_on[600:].any()
    assert trace.cabinet_c[600 + 180] > 8.0
    assert np.all(np.diff(trace.cabinet_c[600:]) > 0)
    assert trace.cabinet_c[-1] < 21.0


def test_defrost_heats_the_evaporator_with_the_compressor_off() -> None:
    trace = run()
    on = trace.defrost_on
    assert on.any() and not trace.compressor_on[on].any()
    ends = np.flatnonzero(on[:-1] & ~on[1:])
    assert (trace.evaporator_c[ends] > 5.0).all()
    assert trace.evaporator_c[~on].mean() < trace.evaporator_c[ends].mean() - 5.0


@settings(max_examples=20, deadline=None)
@given(openings=st.integers(1, 6), room_c=st.floats(15.0, 35.0))
def test_door_openings_warm_the_cabinet(openings: int, room_c: float) -> None:
    closed = run(room_c=room_c, defrost=False)
    busy = run(openings=openings, room_c=room_c, defrost=False)
    assert busy.door_open.all() and not closed.door_open.any()
    # The thermostat fights back: the compressor runs more to hold the band...
    assert busy.compressor_on.mean() > closed.compressor_on.mean()
    idle = ~busy.compressor_on[1:] & ~busy.compressor_on[:-1]
    if idle.any():
        # ...and between its runs the cabinet warms faster with the door opening.
        shut = ~closed.compressor_on[1:] & ~closed.compressor_on[:-1]
        assert np.diff(busy.cabinet_c)[idle].mean() > np.diff(closed.cabinet_c)[shut].mean()
    else:
        # A door open this often outruns the compressor: the cabinet settles warmer.
        assert busy.cabinet_c[60:].min() > closed.cabinet_c.mean()


def test_a_door_left_ajar_with_a_failed_compressor_warms_faster() -> None:
    shut = run(failed_from=0, defrost=False)
    ajar = run(failed_from=0, ajar=True, defrost=False)
    assert ajar.door_open.all()
    assert ajar.cabinet_c[60] > shut.cabinet_c[60] + 2.0


def test_in_a_store_only_the_failed_fridge_warms_and_its_shelf_board_follows() -> None:
    seed = 13
    layout = build_layout(seed, 0, PROFILES["convenience"], build_catalog(seed))
    fridge = layout.fridges[0]
    start = TS[0] + 8 * 3_600_000
    faults = FaultSchedule(
        (Fault(fridge.device_id, FaultKind.COMPRESSOR_FAILURE, start, start + 6 * 3_600_000),)
    )
    sim = StoreSim(layout, seed=seed, clock=SimClock.starting(DEFAULT_START), faults=faults)
    step = sim.advance(N)
    hours = (step.ts - TS[0]) / 3_600_000
    window = (hours >= 8) & (hours < 14)
    assert step.true_cabinet_c[window, 0].max() > 10.0
    assert step.true_cabinet_c[window, 1].max() < 8.0
    assert not step.compressor_on[window, 0].any()
    # Customers open the doors during opening hours.
    assert step.door_open[(hours > 9) & (hours < 21)].any() and not step.door_open[hours < 5].any()
    board = step.board_c[:, fridge.shelf]
    assert np.corrcoef(board, step.true_cabinet_c[:, 0])[0, 1] > 0.9
    # Measured temperatures stay near the truth.
    assert np.abs(step.cabinet_c - step.true_cabinet_c).max() < 0.5
