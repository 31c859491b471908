"""What the feature state reports about lanes besides features: events and per-lane flags."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

Bool = npt.NDArray[np.bool_]


class LaneEventKind(StrEnum):
    RESTOCK = "restock"  # a sustained rise of at least one unit
    REMOVAL = "removal"  # a sustained fall: customers (paying or not) took units
    STUCK_STARTED = "stuck_started"  # the cell repeats one value exactly: it stopped measuring
    STUCK_ENDED = "stuck_ended"


@dataclass(frozen=True, slots=True)
class LaneEvent:
    """One thing that happened on a lane, stamped with the reading that showed it.

    ``units`` is the size of a restock or removal (always positive) and 0 for
    the stuck transitions; ``units_after`` is the lane's count afterwards.
    """

    kind: LaneEventKind
    index: int  # position in LaneFeatureState.lanes
    device: str
    lane: int
    ts_ms: int
    units: int
    units_after: int


@dataclass(frozen=True, slots=True, eq=False)
class LaneFlags:
    """Per-lane booleans at the store's latest event time, index i = lane i."""

    stuck: Bool  # the cell repeats one value: its count is held, not measured
    stale: Bool  # no usable reading for a while (dropouts, device offline, stuck)
    never_seen: Bool  # no usable reading since start: the count is unknown
    restocked_recently: Bool  # a restock within the last hour
    empty: Bool  # the count is 0
