"""Everything random about one simulated day of one store, drawn in one go.

Each day and each concern has its own stream (see :mod:`shelflink.sim.seeds`),
so a day's draws do not depend on how the day is cut into steps, and sensor
noise does not depend on the customers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shelflink.sim.config import SimConfig
from shelflink.sim.demand import DemandBlock, Promotion, draw_block
from shelflink.sim.layout import StoreLayout
from shelflink.sim.seeds import Stream, store_rng

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True, eq=False)
class DayDraws:
    index: int
    demand: DemandBlock
    promotions: tuple[Promotion, ...]  # those active at some time of the day
    noise_g: tuple[F64, ...]  # per shelf device (ticks, lanes)
    dropped: tuple[Bool, ...]  # per shelf device (ticks, lanes): random dropouts
    board_noise_c: tuple[F64, ...]  # per shelf device (ticks,)
    cabinet_noise_c: F64  # (ticks, fridges)
    evaporator_noise_c: F64
    door_openings: I64  # (ticks, fridges)


def draw_day(
    layout: StoreLayout,
    seed: int,
    day: int,
    ts: I64,
    tick_ms: int,
    promotions: tuple[Promotion, ...],
    config: SimConfig,
) -> DayDraws:
    idx = layout.store_index
    n = int(ts.shape[0])
    demand = draw_block(
        store_rng(seed, idx, Stream.DEMAND, day, 1),
        layout,
        ts,
        tick_ms,
        list(promotions),
        config.demand,
    )
    cell = config.load_cell
    noise: list[F64] = []
    dropped: list[Bool] = []
    board: list[F64] = []
    for d, shelf in enumerate(layout.shelves):
        rng = store_rng(seed, idx, Stream.SENSOR, d, 1, day)
        noise.append(rng.normal(0.0, cell.noise_g, (n, shelf.lanes)))
        dropped.append(rng.random((n, shelf.lanes)) < cell.dropout_rate)
        board.append(rng.normal(0.0, cell.board_noise_c, (n,)))
    n_fridges = len(layout.fridges)
    cabinet_noise = np.zeros((n, n_fridges))
    evaporator_noise = np.zeros((n, n_fridges))
    for f in range(n_fridges):
        rng = store_rng(seed, idx, Stream.FRIDGE, f, day)
        cabinet_noise[:, f] = rng.normal(0.0, config.fridge.sensor_noise_c, (n,))
        evaporator_noise[:, f] = rng.normal(0.0, config.fridge.sensor_noise_c, (n,))
    # A customer opens a fridge's door once however many of its lanes they pick
    # from; a customer who finds the lane empty has opened the door all the same.
    doors = np.zeros((n, n_fridges), dtype=np.int64)
    fridge_of = layout.lane_fridge[demand.ev_lane]
    at_fridge = fridge_of >= 0
    if n_fridges and at_fridge.any():
        key = np.unique(demand.ev_customer[at_fridge] * n_fridges + fridge_of[at_fridge])
        np.add.at(doors, (demand.customer_tick[key // n_fridges], key % n_fridges), 1)
    return DayDraws(
        index=day,
        demand=demand,
        promotions=promotions,
        noise_g=tuple(noise),
        dropped=tuple(dropped),
        board_noise_c=tuple(board),
        cabinet_noise_c=cabinet_noise,
        evaporator_noise_c=evaporator_noise,
        door_openings=doors,
    )
