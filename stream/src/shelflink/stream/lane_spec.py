"""The planogram entry of one lane: which product it holds, what a unit weighs, how many fit."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LaneSpec:
    """One lane of a shelf device, as the store's planogram describes it.

    ``lane`` is the lane's position in ``ShelfReading.grams``; ``unit_g`` turns
    grams into units and ``capacity`` is what a full lane holds.
    """

    device: str
    lane: int
    gtin: str
    unit_g: float
    capacity: int

    def __post_init__(self) -> None:
        if self.lane < 0:
            raise ValueError(f"lane index {self.lane} is negative")
        if not self.unit_g > 0:
            raise ValueError(f"unit_g of {self.device}/{self.lane} must be positive")
        if self.capacity < 1:
            raise ValueError(f"capacity of {self.device}/{self.lane} must be at least 1")
