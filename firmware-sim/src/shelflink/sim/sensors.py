"""Load cells as they really read: noise, tare offset, temperature drift, stuck, dropouts.

What a lane reports is ``units * unit_g + tare_offset + drift * (board_c -
reference_c) + noise``, rounded to the cell's resolution. The tare offset and
the drift coefficient are fixed per lane (calibration is never perfect); the
board temperature follows the room's daily cycle on the shop floor and the
cabinet's temperature inside a fridge, so readings breathe with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shelflink.sim.clock import hour_of_day

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class LoadCellParams:
    noise_g: float = 1.5  # standard deviation of one reading
    tare_offset_g: float = 8.0  # standard deviation of the per-lane zero error
    drift_g_per_c: float = 0.6  # standard deviation of the per-lane drift coefficient
    reference_c: float = 25.0  # the temperature the cells were calibrated at
    resolution_g: float = 0.1
    dropout_rate: float = 0.001  # chance that one lane's value is lost in one reading
    board_self_heat_c: float = 4.0  # electronics run warmer than the room
    board_noise_c: float = 0.1


@dataclass(frozen=True, slots=True)
class RoomParams:
    """The shop floor's temperature: a daily cycle peaking mid-afternoon."""

    mean_c: float = 21.0
    swing_c: float = 1.5
    peak_hour: float = 15.0


def room_temperature(ts_ms: I64, room: RoomParams) -> F64:
    phase = 2.0 * math.pi * (hour_of_day(ts_ms) - room.peak_hour + 6.0) / 24.0
    return room.mean_c + room.swing_c * np.sin(phase)


@dataclass(frozen=True, slots=True, eq=False)
class Calibration:
    """Per-lane errors of one shelf device, fixed for its lifetime."""

    tare_offset_g: F64
    drift_g_per_c: F64
    board_offset_c: float

    @classmethod
    def draw(cls, rng: np.random.Generator, lanes: int, params: LoadCellParams) -> Calibration:
        return cls(
            tare_offset_g=rng.normal(0.0, params.tare_offset_g, lanes),
            drift_g_per_c=rng.normal(0.0, params.drift_g_per_c, lanes),
            board_offset_c=float(rng.normal(0.0, 0.5)),
        )


def measure(
    units: I64,
    unit_g: F64,
    board_c: F64,
    calibration: Calibration,
    noise: F64,
    stuck: Bool,
    dropped: Bool,
    last: F64,
    params: LoadCellParams,
) -> tuple[F64, F64]:
    """Readings of ``(ticks, lanes)``: NaN where a lane dropped out.

    ``last`` is each lane's last produced value before this chunk (NaN if none);
    a stuck lane repeats it. Returns the readings and the new ``last``, which
    ignores dropouts: a value lost in transit was still produced.
    """
    raw = (
        units * unit_g
        + calibration.tare_offset_g
        + calibration.drift_g_per_c * (board_c[:, None] - params.reference_c)
        + noise
    )
    raw = np.round(raw / params.resolution_g) * params.resolution_g
    if stuck.any():
        # Row 0 of `extended` is the carried value; each stuck cell points at the
        # most recent non-stuck row at or before it.
        extended = np.vstack([last[None, :], raw])
        rows = np.arange(1, raw.shape[0] + 1)[:, None]
        source = np.maximum.accumulate(np.where(stuck, 0, rows), axis=0)
        raw = np.take_along_axis(extended, source, axis=0)
    new_last = raw[-1].copy() if raw.shape[0] else last
    return np.where(dropped, np.nan, raw), new_last
