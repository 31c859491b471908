"""A refrigeration controller as the OPC UA simulator serves it: the sim's fridge model, stepped.

This is the functional core of :mod:`shelflink.sim.opcua_fridge`: no I/O and no
OPC UA. Each controller owns one fridge of the simulator's thermal model
(:func:`shelflink.sim.fridge.simulate`, the same thermostat, defrost schedule,
room cycle and fault schedule as a simulated store) and adds what a controller
has on its own: door openings without a store's customers behind them, sensor
noise, and a delayed high-temperature alarm.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from shelflink.sim.clock import MS_PER_DAY
from shelflink.sim.faults import Fault, FaultKind, FaultSchedule
from shelflink.sim.fridge import FridgeParams, FridgeState, defrost_schedule, simulate
from shelflink.sim.readout import DEFROST_STAGGER_MS
from shelflink.sim.seeds import rng_for
from shelflink.sim.sensors import RoomParams, room_temperature

# First key level of the controllers' random streams. shelflink.sim.seeds uses
# 0..3 for the catalog, stores, faults and profiles; a distant value keeps the
# controllers' draws apart from any store's, now and when seeds.py grows.
_CONTROLLER_KEY: Final = 100

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

# Faults a controller can show. OFFLINE is a device that publishes nothing,
# which for a server is the operator killing it: the tests do exactly that.
CONTROLLER_FAULTS: Final = frozenset({FaultKind.COMPRESSOR_FAILURE, FaultKind.DOOR_AJAR})


@dataclass(frozen=True, slots=True)
class ControllerParams:
    tick_s: int = 10  # one step of the thermal model; any divisor of a day
    # A store's fridge door opens with its customers; a lone controller has no
    # store around it, so openings arrive as a Poisson process at this rate.
    door_openings_per_h: float = 20.0
    alarm_high_c: float = 8.0  # the cabinet alarm limit of a chilled cabinet
    # Door openings and defrost warm the cabinet briefly; a controller alarms
    # only when it stays warm this long, as real ones do.
    alarm_delay_s: float = 900.0
    fridge: FridgeParams = field(default_factory=FridgeParams)
    room: RoomParams = field(default_factory=RoomParams)

    def __post_init__(self) -> None:
        if self.tick_s < 1 or MS_PER_DAY % (self.tick_s * 1000) != 0:
            raise ValueError("tick_s must divide a day (86400 s) evenly")
        if self.door_openings_per_h < 0 or self.alarm_delay_s < 0:
            raise ValueError("door_openings_per_h and alarm_delay_s must not be negative")


@dataclass(frozen=True, slots=True)
class ControllerValues:
    """What the controller shows after a step: the six variables it serves."""

    cabinet_c: float
    evaporator_c: float
    door_open: bool
    compressor_on: bool
    defrost_on: bool
    alarm: bool


class FridgeController:
    """One fridge and its controller, advanced in whole ticks of simulated time."""

    def __init__(
        self, name: str, index: int, seed: int, start_ms: int, params: ControllerParams
    ) -> None:
        self.name = name
        self.params = params
        self.sim_ms = start_ms - start_ms % (params.tick_s * 1000)
        self.faults = FaultSchedule()
        setpoint = params.fridge.setpoint_c
        self._state = FridgeState(setpoint, setpoint)
        # Separate streams for doors and noise: each is drawn tick by tick in
        # order, so stepping 6 ticks at once or one at a time draws the same.
        self._doors = rng_for(seed, _CONTROLLER_KEY, index, 0)
        self._noise = rng_for(seed, _CONTROLLER_KEY, index, 1)
        # Controllers of one site defrost in turn, as a store's fridges do.
        self._defrost_phase_ms = index * DEFROST_STAGGER_MS
        self._warm_since_ms: int | None = None
        self.values = ControllerValues(setpoint, setpoint, False, False, False, False)

    @property
    def tick_ms(self) -> int:
        return self.params.tick_s * 1000

    def inject(self, kind: FaultKind, duration_s: float) -> Fault:
        """Start a fault now (simulated time) for ``duration_s`` simulated seconds."""
        if kind not in CONTROLLER_FAULTS:
            allowed = ", ".join(sorted(CONTROLLER_FAULTS))
            raise ValueError(f"{kind} does not apply to a fridge controller (one of: {allowed})")
        if not math.isfinite(duration_s) or duration_s <= 0:
            raise ValueError("a fault lasts a positive, finite number of seconds")
        fault = Fault(self.name, kind, self.sim_ms, self.sim_ms + max(1, round(duration_s * 1000)))
        self.faults = self.faults.with_fault(fault)
        return fault

    def clear_faults(self) -> None:
        self.faults = FaultSchedule()

    def advance(self, ticks: int) -> ControllerValues:
        """Simulate ``ticks`` ticks and return the controller's values after the last one.

        The model is solved exactly per tick and the random draws are made tick
        by tick, so one call of n ticks ends where n calls of one tick end: a
        server's step sizes (which follow the wall clock) change nothing.
        """
        if ticks < 1:
            return self.values
        p = self.params
        ts = self.sim_ms + self.tick_ms * np.arange(1, ticks + 1, dtype=np.int64)
        expected_openings = p.door_openings_per_h * p.tick_s / 3600.0
        trace = simulate(
            self._state,
            p.fridge,
            float(p.tick_s),
            room_temperature(ts, p.room),
            self._doors.poisson(expected_openings, ticks).astype(np.int64),
            defrost_schedule(ts, p.fridge, self._defrost_phase_ms),
            self.faults.device_mask(self.name, FaultKind.COMPRESSOR_FAILURE, ts),
            self.faults.device_mask(self.name, FaultKind.DOOR_AJAR, ts),
        )
        noise = self._noise.normal(0.0, p.fridge.sensor_noise_c, (ticks, 2))
        measured = np.round(trace.cabinet_c + noise[:, 0], 2)
        alarm = self._alarm(ts, measured)
        self.sim_ms = int(ts[-1])
        self.values = ControllerValues(
            cabinet_c=float(measured[-1]),
            evaporator_c=float(np.round(trace.evaporator_c[-1] + noise[-1, 1], 2)),
            door_open=bool(trace.door_open[-1]),
            compressor_on=bool(trace.compressor_on[-1]),
            defrost_on=bool(trace.defrost_on[-1]),
            alarm=alarm,
        )
        return self.values

    def _alarm(self, ts: I64, measured: F64) -> bool:
        delay_ms = self.params.alarm_delay_s * 1000.0
        alarm = self.values.alarm
        for when, cabinet in zip(ts.tolist(), measured.tolist(), strict=True):
            if cabinet > self.params.alarm_high_c:
                if self._warm_since_ms is None:
                    self._warm_since_ms = when
                alarm = when - self._warm_since_ms >= delay_ms
            else:
                self._warm_since_ms = None
                alarm = False
        return alarm


def due_ticks(elapsed_wall_s: float, speed: float, tick_s: int, done: int) -> int:
    """How many ticks a server ``elapsed_wall_s`` into its run at ``speed`` still owes."""
    return max(0, math.floor(elapsed_wall_s * speed / tick_s) - done)
