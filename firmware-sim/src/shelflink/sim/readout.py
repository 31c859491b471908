"""What a store's devices report about the true state: the sensor side of a store.

Holds the state that belongs to the devices, not to the store: each shelf's
calibration errors and last produced values (a stuck lane repeats them), and
each fridge's thermal state. Faults act here and only here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shelflink.sim.config import SimConfig
from shelflink.sim.day import DayDraws
from shelflink.sim.faults import FaultKind, FaultSchedule
from shelflink.sim.fridge import FridgeState, defrost_schedule, simulate
from shelflink.sim.layout import StoreLayout
from shelflink.sim.seeds import Stream, store_rng
from shelflink.sim.sensors import Calibration, measure, room_temperature

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]

# Fridges defrost in turn, not all at once, as a store's controllers are set up.
DEFROST_STAGGER_MS = 97 * 60_000
# A board inside a fridge runs this much warmer than the cabinet air.
FRIDGE_BOARD_SELF_HEAT_C = 1.0


@dataclass(frozen=True, slots=True, eq=False)
class FridgeReadout:
    """Per tick and fridge: ``(ticks, fridges)``."""

    cabinet_c: F64  # as measured
    true_cabinet_c: F64
    evaporator_c: F64  # as measured
    door_open: Bool
    compressor_on: Bool
    defrost_on: Bool
    online: Bool


@dataclass(frozen=True, slots=True, eq=False)
class ShelfReadout:
    grams: F64  # (ticks, lanes); NaN where a lane dropped out
    board_c: F64  # (ticks, shelves)
    online: Bool  # (ticks, shelves)


class Devices:
    def __init__(self, layout: StoreLayout, seed: int, config: SimConfig) -> None:
        self.layout = layout
        self.config = config
        cell = config.load_cell
        self.calibration = [
            Calibration.draw(
                store_rng(seed, layout.store_index, Stream.SENSOR, d, 0), s.lanes, cell
            )
            for d, s in enumerate(layout.shelves)
        ]
        self.last_grams = [np.full(s.lanes, np.nan) for s in layout.shelves]
        setpoint = config.fridge.setpoint_c
        self.fridges = [FridgeState(setpoint, setpoint) for _ in layout.fridges]

    def read_fridges(
        self, draws: DayDraws, rows: slice, ts: I64, faults: FaultSchedule
    ) -> FridgeReadout:
        params = self.config.fridge
        shape = (int(ts.shape[0]), len(self.layout.fridges))
        measured, true_c, evap = np.zeros(shape), np.zeros(shape), np.zeros(shape)
        door, comp, defrost, online = (np.zeros(shape, dtype=bool) for _ in range(4))
        room = room_temperature(ts, self.config.room)
        for f, fridge in enumerate(self.layout.fridges):
            trace = simulate(
                self.fridges[f],
                params,
                float(self.config.tick_s),
                room,
                draws.door_openings[rows, f],
                defrost_schedule(ts, params, f * DEFROST_STAGGER_MS),
                faults.device_mask(fridge.device_id, FaultKind.COMPRESSOR_FAILURE, ts),
                faults.device_mask(fridge.device_id, FaultKind.DOOR_AJAR, ts),
            )
            true_c[:, f] = trace.cabinet_c
            measured[:, f] = np.round(trace.cabinet_c + draws.cabinet_noise_c[rows, f], 2)
            evap[:, f] = np.round(trace.evaporator_c + draws.evaporator_noise_c[rows, f], 2)
            door[:, f] = trace.door_open
            comp[:, f] = trace.compressor_on
            defrost[:, f] = trace.defrost_on
            online[:, f] = ~faults.device_mask(fridge.device_id, FaultKind.OFFLINE, ts)
        return FridgeReadout(measured, true_c, evap, door, comp, defrost, online)

    def read_shelves(
        self,
        draws: DayDraws,
        rows: slice,
        ts: I64,
        units: I64,
        cabinet_c: F64,
        faults: FaultSchedule,
    ) -> ShelfReadout:
        layout, cell = self.layout, self.config.load_cell
        n = int(ts.shape[0])
        grams = np.empty((n, layout.lanes))
        board_c = np.empty((n, len(layout.shelves)))
        online = np.empty((n, len(layout.shelves)), dtype=bool)
        room = room_temperature(ts, self.config.room)
        for d, shelf in enumerate(layout.shelves):
            cal = self.calibration[d]
            # Inside a fridge the board sits at the cabinet's temperature.
            if shelf.fridge is None:
                base = room + cell.board_self_heat_c
            else:
                base = cabinet_c[:, shelf.fridge] + FRIDGE_BOARD_SELF_HEAT_C
            board = np.round(base + cal.board_offset_c + draws.board_noise_c[d][rows], 2)
            device = shelf.device_id
            lanes = slice(shelf.start, shelf.stop)
            stuck = faults.lane_mask(device, FaultKind.STUCK, ts, shelf.lanes)
            dropped = draws.dropped[d][rows] | faults.lane_mask(
                device, FaultKind.DROPOUT, ts, shelf.lanes
            )
            grams[:, lanes], self.last_grams[d] = measure(
                units[:, lanes],
                layout.unit_g[lanes],
                board,
                cal,
                draws.noise_g[d][rows],
                stuck,
                dropped,
                self.last_grams[d],
                cell,
            )
            board_c[:, d] = board
            online[:, d] = ~faults.device_mask(device, FaultKind.OFFLINE, ts)
        return ShelfReadout(grams, board_c, online)
