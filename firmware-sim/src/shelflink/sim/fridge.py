"""A refrigerated cabinet: thermostat, evaporator, door openings and defrost cycles.

A first-order model with two temperatures. The evaporator is pulled towards
its refrigerant temperature while the compressor runs, towards its heater's
during defrost, and towards the cabinet otherwise. The cabinet exchanges heat
with the evaporator (quickly while the fan runs with the compressor, slowly by
still air otherwise), leaks towards room temperature through the walls, and
much faster through an open door. Within a tick the other temperature is held
constant, so each step is the exact exponential solution: stable at any tick
length. The thermostat switches the compressor with hysteresis around the
setpoint; defrost and a failed compressor keep it off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class FridgeParams:
    setpoint_c: float = 4.0
    hysteresis_c: float = 2.0  # on above setpoint + h/2, off below setpoint - h/2
    refrigerant_c: float = -8.0
    defrost_heater_c: float = 10.0
    tau_evaporator_s: float = 90.0
    tau_fan_s: float = 1200.0  # cabinet <-> evaporator while the fan runs
    tau_still_s: float = 5400.0  # cabinet <-> evaporator with the fan off
    tau_walls_s: float = 14400.0  # cabinet <-> room through the walls
    tau_door_s: float = 900.0  # cabinet <-> room through a fully open door
    door_open_s: float = 5.0  # how long a customer holds the door open
    ajar_fraction: float = 0.2  # a door left ajar is like this share of fully open
    defrost_every_h: float = 8.0
    defrost_minutes: float = 20.0
    sensor_noise_c: float = 0.05


@dataclass(slots=True)
class FridgeState:
    cabinet_c: float
    evaporator_c: float
    compressor_on: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class FridgeTrace:
    cabinet_c: F64  # true temperatures at the end of each tick
    evaporator_c: F64
    compressor_on: Bool
    defrost_on: Bool
    door_open: Bool


def defrost_schedule(ts_ms: I64, params: FridgeParams, phase_ms: int) -> Bool:
    period = int(params.defrost_every_h * 3_600_000)
    return ((ts_ms - phase_ms) % period) < int(params.defrost_minutes * 60_000)


def simulate(
    state: FridgeState,
    params: FridgeParams,
    tick_s: float,
    room_c: F64,
    door_openings: I64,
    defrost: Bool,
    failed: Bool,
    ajar: Bool,
) -> FridgeTrace:
    """Advance one fridge over ``len(room_c)`` ticks, updating ``state`` in place."""
    n = room_c.shape[0]
    door = np.minimum(1.0, door_openings * params.door_open_s / tick_s)
    door = np.where(ajar, np.maximum(door, params.ajar_fraction), door)
    cabinet = np.empty(n)
    evaporator = np.empty(n)
    running = np.empty(n, dtype=bool)
    keep_evap = math.exp(-tick_s / params.tau_evaporator_s)
    on_above = params.setpoint_c + params.hysteresis_c / 2.0
    off_below = params.setpoint_c - params.hysteresis_c / 2.0
    g_walls = 1.0 / params.tau_walls_s
    cab, evap, comp = state.cabinet_c, state.evaporator_c, state.compressor_on
    # A plain loop: the thermostat makes each tick depend on the last, and for
    # a handful of fridges Python floats beat numpy's per-call overhead.
    for i, (room, frac, dfr, fail) in enumerate(
        zip(room_c.tolist(), door.tolist(), defrost.tolist(), failed.tolist(), strict=True)
    ):
        if dfr or fail:
            comp = False
        elif cab > on_above:
            comp = True
        elif cab < off_below:
            comp = False
        if comp:
            target_e = params.refrigerant_c
        elif dfr:
            # A heater warms the coil; it never cools it below the cabinet air.
            target_e = max(params.defrost_heater_c, cab)
        else:
            target_e = cab
        evap = target_e + (evap - target_e) * keep_evap
        g_e = 1.0 / (params.tau_fan_s if comp else params.tau_still_s)
        g_room = g_walls + frac / params.tau_door_s
        k = g_e + g_room
        target_c = (g_e * evap + g_room * room) / k
        cab = target_c + (cab - target_c) * math.exp(-k * tick_s)
        cabinet[i] = cab
        evaporator[i] = evap
        running[i] = comp
    state.cabinet_c, state.evaporator_c, state.compressor_on = cab, evap, comp
    return FridgeTrace(cabinet, evaporator, running, defrost.copy(), (door_openings > 0) | ajar)
