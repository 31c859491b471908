"""The small integer codes the planner writes into its result arrays.

Arrays of codes (``uint8``) keep a five-million-pair plan compact; the names
are what the database and the dealer see (``Reason(code).label``).
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
from numpy.typing import NDArray


class Reason(IntEnum):
    """Why a pair got the quantity it got; one per store×SKU pair."""

    OK = 0
    NO_NEED = 1
    BELOW_MINIMUM = 2
    NOT_ORDER_DAY = 3
    HELD_COLD_CHAIN_ALARM = 4
    EXPEDITE = 5
    ALLOCATED_SHORT = 6

    @property
    def label(self) -> str:
        """The code as the dealer reads it: ``held_cold_chain_alarm``."""
        return self.name.lower()


class DemandClass(IntEnum):
    """Syntetos–Boylan–Croston demand categories, plus a history without any demand."""

    SMOOTH = 0
    ERRATIC = 1
    INTERMITTENT = 2
    LUMPY = 3
    NO_DEMAND = 4

    @property
    def label(self) -> str:
        """The category's name in lower case: ``intermittent``."""
        return self.name.lower()


def reason_labels(codes: NDArray[np.uint8]) -> NDArray[np.str_]:
    """Reason codes as their labels, element by element."""
    table = np.array([reason.label for reason in Reason])
    result: NDArray[np.str_] = table[codes]
    return result


def demand_class_labels(codes: NDArray[np.uint8]) -> NDArray[np.str_]:
    """Demand class codes as their labels, element by element."""
    table = np.array([demand_class.label for demand_class in DemandClass])
    result: NDArray[np.str_] = table[codes]
    return result
