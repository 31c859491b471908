"""Lane alerts from the stock-out model and the units estimate, with hysteresis.

Three alerts per lane, each raised and cleared as a transition (never repeated
while it stands):

- ``stockout_risk``: the model's probability of running empty within its
  horizon. Raised after ``confirm_ticks`` consecutive ticks at or above
  ``risk_on``; cleared after ``clear_ticks`` consecutive ticks below
  ``risk_off``. The gap between the two thresholds and the tick counts is the
  hysteresis that keeps a lane whose probability hovers near the threshold
  from flapping (one alert per episode, not one per minute).
- ``out_of_stock``: the robust units estimate is 0 now. Cleared by the first
  tick with units again (a restock). No model needed.
- ``low_stock``: units at or below ``low_fraction`` of the lane's capacity
  (at least one unit); cleared once the lane holds more than that again.

A lane whose sensor is stuck or stale says nothing about its stock: its alerts
are frozen (neither raised nor cleared) until it reads again, so a broken cell
neither invents a stock-out nor hides one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shelflink.stream.lanes import LaneSpec

F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]


class LaneAlertConfig(BaseModel):
    """``[edge.alerts]`` in the gateway's TOML file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # None: the threshold the model's card gives (chosen on validation data).
    risk_on: Annotated[float, Field(gt=0, lt=1)] | None = None
    # risk_off = risk_on * risk_off_ratio: the lower threshold that clears a risk.
    risk_off_ratio: Annotated[float, Field(gt=0, le=1)] = 0.7
    confirm_ticks: Annotated[int, Field(ge=1, le=60)] = 2
    clear_ticks: Annotated[int, Field(ge=1, le=60)] = 3
    low_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.2

    @model_validator(mode="after")
    def _ratio(self) -> Self:
        if self.risk_on is not None and self.risk_on * self.risk_off_ratio <= 0:
            raise ValueError("risk_off must stay above 0")
        return self


class AlertKind(StrEnum):
    STOCKOUT_RISK = "stockout_risk"
    OUT_OF_STOCK = "out_of_stock"
    LOW_STOCK = "low_stock"


@dataclass(frozen=True, slots=True)
class LaneAlert:
    """One transition: ``raised`` True when the alert starts, False when it clears."""

    kind: AlertKind
    raised: bool
    lane: LaneSpec
    ts_ms: int
    units: int
    probability: float | None  # the model's, when it ran this tick
    minutes_to_empty: float | None  # expected, from the depletion profile; None if not expected


class LaneAlerts:
    """Alert state of every lane of one store, updated once per tick."""

    def __init__(self, lanes: tuple[LaneSpec, ...], config: LaneAlertConfig) -> None:
        self.lanes = lanes
        self.config = config
        n = len(lanes)
        self.capacity = np.array([lane.capacity for lane in lanes], dtype=np.int64)
        self.low_units = np.maximum(1, np.floor(self.capacity * config.low_fraction)).astype(
            np.int64
        )
        self.risk = np.zeros(n, dtype=np.bool_)
        self.out = np.zeros(n, dtype=np.bool_)
        self.low = np.zeros(n, dtype=np.bool_)
        self._above = np.zeros(n, dtype=np.int64)  # consecutive ticks at/above risk_on
        self._below = np.zeros(n, dtype=np.int64)  # consecutive ticks below risk_off

    def update(
        self,
        ts_ms: int,
        units: npt.NDArray[np.integer],
        probability: F64 | None,
        minutes_to_empty: F64,
        blind: Bool,
        risk_on: float,
    ) -> list[LaneAlert]:
        """Advance one tick; ``blind`` marks lanes whose reading cannot be trusted now."""
        seeing = ~blind
        units = units.astype(np.int64)
        raised: dict[AlertKind, Bool] = {}
        cleared: dict[AlertKind, Bool] = {}

        empty = units <= 0
        raised[AlertKind.OUT_OF_STOCK] = seeing & empty & ~self.out
        cleared[AlertKind.OUT_OF_STOCK] = seeing & ~empty & self.out
        self.out = np.where(seeing, empty, self.out)

        # An empty lane is out of stock, not low: the two never stand together.
        low_now = ~empty & (units <= self.low_units)
        raised[AlertKind.LOW_STOCK] = seeing & low_now & ~self.low
        cleared[AlertKind.LOW_STOCK] = seeing & ~low_now & self.low
        self.low = np.where(seeing, low_now, self.low)

        risk_raised = np.zeros_like(self.risk)
        risk_cleared = np.zeros_like(self.risk)
        if probability is not None:
            risk_off = risk_on * self.config.risk_off_ratio
            # Already empty: the risk came true, which out_of_stock reports.
            judged = seeing & ~empty
            # Blind lanes keep their counts: a dropout does not restart the hysteresis.
            above = np.where(probability >= risk_on, self._above + 1, 0)
            below = np.where(probability < risk_off, self._below + 1, 0)
            self._above = np.where(judged, above, self._above)
            self._below = np.where(judged, below, self._below)
            risk_raised = judged & ~self.risk & (self._above >= self.config.confirm_ticks)
            risk_cleared = self.risk & ((self._below >= self.config.clear_ticks) | (seeing & empty))
            self.risk = (self.risk | risk_raised) & ~risk_cleared
        raised[AlertKind.STOCKOUT_RISK] = risk_raised
        cleared[AlertKind.STOCKOUT_RISK] = risk_cleared

        alerts: list[LaneAlert] = []
        for kind in AlertKind:
            for flag, mask in ((True, raised[kind]), (False, cleared[kind])):
                for i in np.flatnonzero(mask):
                    eta = float(minutes_to_empty[i])
                    alerts.append(
                        LaneAlert(
                            kind=kind,
                            raised=flag,
                            lane=self.lanes[i],
                            ts_ms=ts_ms,
                            units=int(units[i]),
                            probability=None if probability is None else float(probability[i]),
                            minutes_to_empty=eta if np.isfinite(eta) else None,
                        )
                    )
        return alerts

    def active(self) -> dict[AlertKind, int]:
        return {
            AlertKind.STOCKOUT_RISK: int(self.risk.sum()),
            AlertKind.OUT_OF_STOCK: int(self.out.sum()),
            AlertKind.LOW_STOCK: int(self.low.sum()),
        }
