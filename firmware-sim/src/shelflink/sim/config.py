"""Everything about a simulation that is not a store profile."""

from __future__ import annotations

from dataclasses import dataclass, field

from shelflink.sim.demand import DemandParams
from shelflink.sim.fridge import FridgeParams
from shelflink.sim.sensors import LoadCellParams, RoomParams


@dataclass(frozen=True, slots=True)
class SimConfig:
    tick_s: int = 60  # one reading per device per tick
    currency: str = "EUR"
    catalog_size: int = 400
    cold_fraction: float = 0.25
    demand: DemandParams = field(default_factory=DemandParams)
    load_cell: LoadCellParams = field(default_factory=LoadCellParams)
    fridge: FridgeParams = field(default_factory=FridgeParams)
    room: RoomParams = field(default_factory=RoomParams)
    # The store's own standing order to its dealer. Switch it off when another
    # component (the cloud's replenishment planner) injects the deliveries.
    auto_replenish: bool = True
    promotions: bool = True

    def __post_init__(self) -> None:
        if len(self.currency) != 3 or not self.currency.isupper():
            raise ValueError("currency is an ISO 4217 code such as EUR")
