"""A scripted shelf for the stream tests: known units, tare, drift and noise per lane."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest

from shelflink.device.gtin import make_gtin
from shelflink.stream.lanes import LaneFeatureState, LaneSpec

MONDAY_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC, a Monday
MINUTE_MS = 60_000


def _gtin(n: int) -> str:
    """A valid GTIN-13 in the restricted-circulation range."""
    return make_gtin(f"290{n:09d}")


@dataclass
class ScriptedShelf:
    """One shelf device whose cells read ``units * unit_g + tare + drift * (board_c - 25) + noise``.

    Readings are rounded to 0.1 g as real cells report them.
    """

    device: str
    unit_g: Sequence[float]
    capacity: Sequence[int]
    tare_g: Sequence[float]
    drift_g_per_c: Sequence[float]
    gtins: Sequence[str]
    noise_g: float = 1.5
    seed: int = 0
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def specs(self) -> list[LaneSpec]:
        return [
            LaneSpec(self.device, i, self.gtins[i], self.unit_g[i], self.capacity[i])
            for i in range(len(self.unit_g))
        ]

    def grams(self, units: Sequence[int], board_c: float = 25.0) -> list[float]:
        w = np.asarray(self.unit_g)
        raw = (
            np.asarray(units) * w
            + np.asarray(self.tare_g)
            + np.asarray(self.drift_g_per_c) * (board_c - 25.0)
            + self.rng.normal(0.0, self.noise_g, w.shape[0])
        )
        return [float(v) for v in np.round(raw, 1)]

    def play(
        self,
        state: LaneFeatureState,
        units_at: Callable[[int], Sequence[int]],
        minutes: range,
        *,
        start_ms: int = MONDAY_MS,
        board_c: Callable[[int], float] = lambda _: 25.0,
    ) -> None:
        """Feed one reading a minute: minute k reads ``units_at(k)`` at ``board_c(k)``."""
        for k in minutes:
            temp = board_c(k)
            state.observe_shelf(
                self.device, start_ms + k * MINUTE_MS, self.grams(units_at(k), temp), temp
            )


ShelfFactory = Callable[..., ScriptedShelf]


@pytest.fixture
def make_shelf() -> ShelfFactory:
    """Build a scripted shelf; lanes default to 100 g units, capacity 40, no tare or drift."""

    def build(
        lanes: int = 1,
        *,
        device: str = "s0001-shelf-01",
        unit_g: Sequence[float] | None = None,
        capacity: Sequence[int] | None = None,
        tare_g: Sequence[float] | None = None,
        drift_g_per_c: Sequence[float] | None = None,
        gtins: Sequence[str] | None = None,
        noise_g: float = 1.5,
        seed: int = 0,
    ) -> ScriptedShelf:
        return ScriptedShelf(
            device=device,
            unit_g=unit_g if unit_g is not None else [100.0] * lanes,
            capacity=capacity if capacity is not None else [40] * lanes,
            tare_g=tare_g if tare_g is not None else [0.0] * lanes,
            drift_g_per_c=drift_g_per_c if drift_g_per_c is not None else [0.0] * lanes,
            gtins=gtins if gtins is not None else [_gtin(i + 1) for i in range(lanes)],
            noise_g=noise_g,
            seed=seed,
        )

    return build
